/**
 * Text normalisation for the compliance rule engine, robust to the usual
 * evasions of keyword filters, with a map back to the original text so a
 * hit reports the span the seller actually wrote:
 * - Unicode NFKC (UAX #15): full-width letters and digits (ｂｅｓｔ, １００)
 *   and compatibility forms fold to their plain forms;
 * - case folding (toLowerCase);
 * - traditional → simplified Chinese for the characters of the term lists
 *   ({@link T2S}; the Unihan kTraditionalVariant/kSimplifiedVariant pairs of
 *   those characters);
 * - separators dropped: anything that is not a letter or a digit (spaces,
 *   punctuation, symbols, zero-width and bidi controls), except '#' and '%',
 *   which carry meaning in claims ("#1", "100%").
 *
 * Pure: no I/O.
 */

/** Traditional → simplified for every character of the compliance term lists that has a traditional form. */
export const T2S: Readonly<Record<string, string>> = Object.freeze({
  國: '国', 級: '级', 優: '优', 強: '强', 進: '进', 術: '术', 極: '极', 絕: '绝', 對: '对', 獨: '独', 無: '无', 兩: '两',
  萬: '万', 領: '领', 導: '导', 銷: '销', 軍: '军', 頂: '顶', 價: '价', 網: '网', 選: '选',
  療: '疗', 癒: '愈', 藥: '药', 壓: '压', 殺: '杀', 處: '处', 預: '预', 復: '复', 發: '发',
  證: '证', 據: '据', 險: '险', 減: '减', 體: '体', 壽: '寿', 還: '还', 換: '换',
  滅: '灭', 來: '来', 後: '后', 終: '终', 個: '个', 圍: '围', 實: '实', 驗: '验', 臨: '临', 專: '专', 權: '权',
  質: '质', 檢: '检', 測: '测', 認: '认', 確: '确', 護: '护', 衛: '卫', 製: '制', 劑: '剂', 醫: '医', 
  衝: '冲', 勁: '劲', 嚴: '严', 贊: '赞', 譽: '誉', 驚: '惊', 蹟: '迹', 跡: '迹', 隻: '只',
  歷: '历', 剛: '刚', 贏: '赢', 蓋: '盖', 產: '产', 廠: '厂', 純: '纯', 淨: '净', 腫: '肿', 
  癥: '症', 濕: '湿', 參: '参', 靈: '灵', 補: '补', 腎: '肾', 陽: '阳', 虛: '虚', 頭: '头', 號: '号', 稱: '称', 
  學: '学', 億: '亿', 畫: '画', 時: '时', 間: '间', 僅: '仅', 搶: '抢', 購: '购', 錯: '错', 過: '过',
  憂: '忧', 擔: '担', 傷: '伤', 傳: '传', 統: '统', 祕: '秘', 訣: '诀', 貴: '贵', 賣: '卖', 買: '买',
});

/** Simplified → traditional (the inverse of {@link T2S} for single characters; first wins). */
export const S2T: Readonly<Record<string, string>> = Object.freeze(
  Object.fromEntries(Object.entries(T2S).filter(([t, s]) => [...t].length === 1 && t !== s).reverse().map(([t, s]) => [s, t])),
);

const KEEP = /[\p{L}\p{N}#%]/u;

/** A normalised text: `chars[k]` came from the original code unit index `from[k]` (to `to[k]`, exclusive). */
export interface Normalized {
  text: string;
  from: number[];
  to: number[];
}

/**
 * Normalise one character (code point) of the original.
 * @returns its normalised form ('' for a separator)
 */
export function normalizeChar(ch: string): string {
  let out = '';
  for (const c of ch.normalize('NFKC').toLowerCase()) {
    const s = T2S[c] ?? c;
    if (KEEP.test(s)) out += s;
  }
  return out;
}

/**
 * Normalise a text for matching.
 * @param original - the text as written
 * @returns the normalised text and, per normalised code unit, its original span
 */
export function normalize(original: string): Normalized {
  let text = '';
  const from: number[] = [];
  const to: number[] = [];
  let i = 0;
  for (const ch of original) {
    const n = normalizeChar(ch);
    for (let k = 0; k < n.length; k++) {
      from.push(i);
      to.push(i + ch.length);
    }
    text += n;
    i += ch.length;
  }
  return { text, from, to };
}

/** Normalise a term of a rule list (same function, no map). */
export const normalizeTerm = (term: string): string => normalize(term).text;
