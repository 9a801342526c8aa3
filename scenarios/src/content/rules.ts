/**
 * The advertising-law rule engine for product copy.
 *
 * Each rule is a list of terms with the legal source it enforces, why the
 * term is a problem, and a rewrite. Matching runs on the normalised text
 * (`normalize.ts`: NFKC, case, traditional → simplified, separators dropped)
 * and reports the span of the ORIGINAL text. Terms in Latin script must sit
 * on word boundaries of the original (so "best" does not hit "bestow");
 * Chinese terms match anywhere, with listed exceptions for common
 * non-advertising words (最近 "recently", 第一次 "the first time").
 *
 * Sources (the articles are cited per rule):
 * - 中华人民共和国广告法 (PRC Advertising Law, 2015, amended 2018 and 2021):
 *   Art. 9(3) forbids "国家级"、"最高级"、"最佳" and similar terms; Art. 16
 *   (medical, drug, device ads: no assertion or guarantee of efficacy or
 *   safety, no cure or efficacy rates); Art. 17 (no ad other than medical,
 *   drug or device ads may claim to treat disease or use medical terms);
 *   Art. 18 (health-food ads: no efficacy/safety guarantee, no disease
 *   prevention or treatment claim, no claim that the product is necessary
 *   for health, no comparison with drugs).
 * - US: FTC Act §5 (15 U.S.C. §45, unfair or deceptive acts); FTC Policy
 *   Statement Regarding Advertising Substantiation (1984): objective claims
 *   ("clinically proven", "#1", "cures") need a reasonable basis; FTC Health
 *   Products Compliance Guidance (2022). Vague puffery ("great taste") is
 *   not listed.
 * - EU: Unfair Commercial Practices Directive 2005/29/EC, Annex I
 *   ("blacklist"): No. 4 (claiming approval by a public or private body
 *   when not), No. 7 (falsely stating a product is available only for a very
 *   limited time), No. 17 (falsely claiming a product can cure illnesses),
 *   No. 20 (describing a product as free when the consumer pays); Art. 6
 *   (misleading actions) for unsubstantiated superlatives.
 *
 * Pure: no I/O.
 */
import { normalize, normalizeTerm } from './normalize.ts';

export type Market = 'cn' | 'us' | 'eu';
export const MARKETS: readonly Market[] = ['cn', 'us', 'eu'];

/** One rule of the engine. */
export interface ContentRule {
  id: string;
  markets: readonly Market[];
  source: string;
  reason: string;
  /** Rewrite advice; `suggestions[term]` overrides it for one term. */
  suggestion: string;
  suggestions?: Readonly<Record<string, string>>;
  terms: readonly string[];
  /** Normalised continuations that make a term harmless (e.g. 最 + 近). */
  notFollowedBy?: Readonly<Record<string, readonly string[]>>;
}

/** One violation: the rule, its source, the span of the original text, why, and a rewrite. */
export interface Violation {
  rule: string;
  source: string;
  /** [start, end) code-unit offsets into the original text, and the text there. */
  span: { start: number; end: number; text: string };
  term: string;
  reason: string;
  suggestion: string;
}

const AD_LAW = 'PRC Advertising Law (2015, rev. 2021)';

export const RULES: readonly ContentRule[] = [
  {
    id: 'cn-absolute-terms',
    markets: ['cn'],
    source: `${AD_LAW} Art. 9(3); penalty Art. 57`,
    reason: 'absolute or superlative terms (国家级、最高级、最佳 and the like) are banned in advertising',
    suggestion: '删除绝对化用语，改为可证实的具体描述（如具体参数、检测数据、获奖名称与年份）',
    suggestions: { 最佳: '改为"优选"或具体说明优点', 第一: '删除排名表述，或注明权威统计来源与期间（仍可能违法）', 国家级: '删除，或写明具体的认证/奖项全称', 最: '删除"最"，改为具体、可证实的描述', 顶级: '改为"高品质"并给出具体指标', 唯一: '删除"唯一"，说明具体差异' },
    terms: ['最', '最佳', '最好', '最高级', '最高', '最低价', '最优', '最强', '最大', '最先进', '第一', '全网第一', '销量第一', 'no1', '国家级', '世界级', '顶级', '极品', '极致', '绝对', '唯一', '首个', '首选', '独一无二', '史无前例', '万能', '全球领先', '遥遥领先', '王牌', '冠军', '百分之百', '100%'],
    notFollowedBy: { 最: ['近', '后', '初', '终', '早', '晚'], 第一: ['次', '天', '步', '章', '条', '款', '页', '周', '批', '口'] },
  },
  {
    id: 'cn-medical-claims',
    markets: ['cn'],
    source: `${AD_LAW} Art. 17`,
    reason: 'only medical, drug and medical-device advertisements may claim to treat disease or use medical terms',
    suggestion: '删除疾病治疗或医疗用语；普通商品只描述成分、用途与使用感受',
    suggestions: { 治疗: '删除"治疗"，改为"护理"等非医疗描述', 消炎: '删除', 抗癌: '删除（任何普通商品不得声称抗癌）' },
    terms: ['治疗', '治愈', '根治', '疗效', '药效', '抗癌', '防癌', '消炎', '杀菌', '降血压', '降血糖', '降血脂', '药到病除', '包治百病', '祛病', '疗程', '处方'],
  },
  {
    id: 'cn-efficacy-guarantee',
    markets: ['cn'],
    source: `${AD_LAW} Art. 16(1)–(2), Art. 18(1)`,
    reason: 'assertions or guarantees of efficacy or safety, and cure or efficacy rates, are banned',
    suggestion: '删除功效/安全性的断言与保证，不得出现治愈率、有效率',
    terms: ['治愈率', '有效率', '保证治愈', '无效退款', '无副作用', '安全无毒', '根除', '永不复发', '立竿见影'],
  },
  {
    id: 'cn-health-food-claims',
    markets: ['cn'],
    source: `${AD_LAW} Art. 18(2)–(4)`,
    reason: 'health-food ads may not claim to prevent or treat disease, be necessary for health, or replace drugs',
    suggestion: '删除疾病预防/治疗及替代药物的表述，注明"本品不能代替药物"',
    terms: ['预防疾病', '替代药物', '代替药物', '保障健康', '延年益寿', '返老还童', '排毒', '减肥', '瘦身'],
  },
  {
    id: 'en-disease-claims',
    markets: ['us', 'eu'],
    source: 'FTC Act §5 (15 U.S.C. §45) and FTC Health Products Compliance Guidance (2022); Directive 2005/29/EC Annex I No. 17',
    reason: 'claims that a product cures, treats or prevents disease need competent and reliable scientific evidence (US) and are blacklisted when false (EU)',
    suggestion: 'remove the disease claim; describe ingredients and use without promising a health outcome',
    suggestions: { 'miracle cure': 'remove "miracle cure"' },
    terms: ['cure', 'cures', 'heals', 'treats cancer', 'prevents cancer', 'cure cancer', 'miracle cure', 'no side effects', 'detox', 'lose weight fast', 'burns fat'],
  },
  {
    id: 'en-unsubstantiated-claims',
    markets: ['us', 'eu'],
    source: 'FTC Policy Statement Regarding Advertising Substantiation (1984); Directive 2005/29/EC Art. 6(1)(b)',
    reason: 'objective claims (proof, rankings, guarantees) need a reasonable basis at the time they are made',
    suggestion: 'state the evidence (study, sample, date) or remove the claim',
    suggestions: { '#1': 'remove "#1" or cite the ranking source and period', 'number one': 'remove "number one" or cite the ranking source and period' },
    terms: ['clinically proven', 'scientifically proven', 'doctor recommended', 'guaranteed results', '100% effective', '#1', 'number one', 'best in the world', "world's best", 'risk free'],
  },
  {
    id: 'en-false-approval',
    markets: ['us', 'eu'],
    source: 'Directive 2005/29/EC Annex I No. 4; FTC Act §5 (FDA does not approve dietary supplements or cosmetics)',
    reason: 'claiming approval or endorsement by a public body that has not given it is deceptive',
    suggestion: 'remove the approval claim, or name the actual certificate and its number',
    terms: ['fda approved', 'government approved', 'eu approved', 'officially endorsed'],
  },
  {
    id: 'eu-false-urgency',
    markets: ['eu'],
    source: 'Directive 2005/29/EC Annex I No. 7',
    reason: 'falsely stating that a product or its terms are available only for a very limited time is blacklisted',
    suggestion: 'remove the urgency claim unless the offer really ends then; give the end date',
    terms: ['only today', 'last chance', 'limited time only', 'ends tonight'],
  },
];

const LATIN = /^[\p{Script=Latin}\p{N}#%' ]+$/u;
const WORD = /[\p{Script=Latin}\p{N}]/u;

interface Compiled {
  rule: ContentRule;
  term: string;
  norm: string;
  latin: boolean;
  except: string[];
}

const COMPILED: Compiled[] = RULES.flatMap((rule) =>
  rule.terms.map((term) => ({ rule, term, norm: normalizeTerm(term), latin: LATIN.test(term), except: (rule.notFollowedBy?.[term] ?? []).map(normalizeTerm) })),
);

/**
 * Find every rule hit in a text for a market.
 * @param text - product copy as written
 * @param market - cn | us | eu
 * @returns violations, one per (rule, span), the longest term at each start, in text order
 */
export function findViolations(text: string, market: Market): Violation[] {
  const n = normalize(text);
  const hits: (Violation & { startNorm: number; lenNorm: number })[] = [];
  for (const c of COMPILED) {
    if (!c.rule.markets.includes(market) || c.norm.length === 0) continue;
    for (let at = n.text.indexOf(c.norm); at !== -1; at = n.text.indexOf(c.norm, at + 1)) {
      const endNorm = at + c.norm.length;
      if (c.except.some((e) => n.text.startsWith(e, endNorm))) continue;
      const start = n.from[at]!;
      const end = n.to[endNorm - 1]!;
      if (c.latin) {
        // Word boundaries in the original: the characters just outside the span are not letters or digits.
        const prev = start > 0 ? [...text.slice(Math.max(0, start - 2), start)].pop()! : ' ';
        const next = end < text.length ? String.fromCodePoint(text.codePointAt(end)!) : ' ';
        if (WORD.test(prev.normalize('NFKC')) || WORD.test(next.normalize('NFKC'))) continue;
      }
      hits.push({ rule: c.rule.id, source: c.rule.source, span: { start, end, text: text.slice(start, end) }, term: c.term, reason: c.rule.reason, suggestion: c.rule.suggestions?.[c.term] ?? c.rule.suggestion, startNorm: at, lenNorm: c.norm.length });
    }
  }
  // One violation per (rule, start): the longest term; and drop a hit inside a longer hit of the same rule.
  hits.sort((a, b) => a.startNorm - b.startNorm || b.lenNorm - a.lenNorm);
  const kept: typeof hits = [];
  for (const h of hits) {
    if (kept.some((k) => k.rule === h.rule && h.startNorm >= k.startNorm && h.startNorm + h.lenNorm <= k.startNorm + k.lenNorm)) continue;
    kept.push(h);
  }
  return kept.map(({ startNorm, lenNorm, ...v }) => (void startNorm, void lenNorm, v));
}
