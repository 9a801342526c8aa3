/**
 * Entity alignment for vertical training: two parties run the ECDH PSI of
 * `shared/psi/ecdh-psi` (Meadows 1986; Huberman, Franklin & Hogg 1999; Ion
 * et al. 2020) over a {@link VerticalChannel}, so that no ID ever travels in
 * the clear — only singly and doubly blinded X25519 values. In mode "ids"
 * each learns the shared IDs (nothing about the other's non-shared ones
 * beyond the other's set size); in mode "size" each learns only how many.
 *
 * Common order. Both sides sort the shared IDs by UTF-16 code units, which
 * gives the same order on both machines without another message; row i of
 * every party's aligned matrix is then the same customer.
 *
 * Message order per pair (both sides send before receiving, so neither
 * waits on the other): psi.blinded{own} → psi.blinded{double}.
 *
 * The event loop stays free. Hashing onto the curve and blinding cost ~50 µs
 * per ID; done in one pass, 30,000 IDs froze a party for tens of seconds and
 * the coordinator dropped it as silent (Socket.IO heartbeats unanswered). So
 * the work runs in chunks of {@link PSI_CHUNK} IDs with a `setImmediate`
 * between them (`PsiParty.blindOwnChunked` / `blindOtherChunked`); a runtime
 * may also spread each chunk over threads (`multiplyBatch`, the CLI's X25519
 * worker pool).
 */
import { FedmartError } from '@fedmart/shared/errors';
import { PSI_ELEMENT_BYTES, PsiParty, type PsiMode, type PsiPartyOptions } from '@fedmart/shared/psi/ecdh-psi';
import type { VerticalMessage } from '@fedmart/shared/protocol-vertical';
import type { VerticalChannel } from './channel.ts';

/** Result of an alignment: the size, and in mode "ids" the own row of each aligned position. */
export interface Alignment {
  /** Number of aligned rows. */
  readonly size: number;
  /** rows[i] = this party's row index of the i-th aligned customer (mode "ids" only). */
  readonly rows?: Int32Array;
  /** The aligned IDs in the common order (mode "ids" only; each party knows these — they are the intersection). */
  readonly ids?: readonly string[];
  /** Wall time, seconds. */
  readonly seconds: number;
}

function packBlinded(values: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(values.length * PSI_ELEMENT_BYTES);
  values.forEach((v, i) => out.set(v, i * PSI_ELEMENT_BYTES));
  return out;
}

function unpackBlinded(bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let o = 0; o < bytes.length; o += PSI_ELEMENT_BYTES) out.push(bytes.slice(o, o + PSI_ELEMENT_BYTES));
  return out;
}

/** IDs hashed and blinded between two turns of the event loop (~50 ms of work on one core). */
export const PSI_CHUNK = 1024;

/** Let timers and socket I/O (heartbeats) run. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Sort by UTF-16 code units (locale-independent, the same on every machine). */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Run PSI with one peer and return the shared IDs (or their count).
 * @param ch - this party's channel
 * @param peer - the peer's id
 * @param ids - this party's customer IDs, one per row (row order)
 * @param opts.set - name of the row set being aligned (e.g. "train"); part of the hash domain
 * @param opts.mode - "ids" (default) or "size"; both sides must agree
 * @param opts.session - session id mixed into the hash domain (both sides the same)
 * @returns the intersection (ids sorted in the common order) and its size
 * @throws FedmartError INVALID_MESSAGE if the peer deviates from the message order or sends malformed values
 */
export async function psiWithPeer(ch: VerticalChannel, peer: string, ids: readonly string[], opts: { set: string; mode?: PsiMode; session?: string; multiplyBatch?: PsiPartyOptions['multiplyBatch'] }): Promise<{ size: number; ids?: string[] }> {
  const mode = opts.mode ?? 'ids';
  const party = new PsiParty(ids, { mode, domain: `${opts.session ?? ''}/${opts.set}`, ...(opts.multiplyBatch ? { multiplyBatch: opts.multiplyBatch } : {}) });
  const own = await party.blindOwnChunked(yieldToEventLoop, PSI_CHUNK);
  await ch.send(peer, 'psi.blinded', { set: opts.set, stage: 'own', count: own.length, mode }, [packBlinded(own)]);
  const theirs = await ch.receive(peer, 'psi.blinded');
  if (theirs.body.stage !== 'own' || theirs.body.set !== opts.set || theirs.body.mode !== mode) {
    throw new FedmartError('INVALID_MESSAGE', `PSI with ${peer}: expected its own blinded IDs for set "${opts.set}" in mode ${mode}, got stage ${theirs.body.stage}, set "${theirs.body.set}", mode ${theirs.body.mode}; both parties must align the same set in the same mode`);
  }
  const theirDouble = await party.blindOtherChunked(unpackBlinded(theirs.parts[0]!), yieldToEventLoop, PSI_CHUNK);
  await ch.send(peer, 'psi.blinded', { set: opts.set, stage: 'double', count: theirDouble.length, mode }, [packBlinded(theirDouble)]);
  const mine = await ch.receive(peer, 'psi.blinded');
  if (mine.body.stage !== 'double' || mine.body.set !== opts.set) {
    throw new FedmartError('INVALID_MESSAGE', `PSI with ${peer}: expected my doubly blinded IDs for set "${opts.set}", got stage ${mine.body.stage} for set "${mine.body.set}"`);
  }
  const r = party.intersect(unpackBlinded(mine.parts[0]!), theirDouble);
  if (mode === 'size') return { size: r.size };
  const shared = [...r.ids!].sort(compareIds);
  return { size: shared.length, ids: shared };
}

/**
 * Map aligned IDs to this party's row indices.
 * @param ids - this party's IDs in row order
 * @param aligned - the aligned IDs in the common order
 * @returns own row of each aligned ID (the first row holding it)
 */
export function rowsOf(ids: readonly string[], aligned: readonly string[]): Int32Array {
  const pos = new Map<string, number>();
  ids.forEach((id, i) => {
    if (!pos.has(id)) pos.set(id, i);
  });
  const out = new Int32Array(aligned.length);
  aligned.forEach((id, i) => {
    const r = pos.get(id);
    if (r === undefined) throw new FedmartError('INTERNAL', 'alignment: an aligned ID is not among this party\'s IDs');
    out[i] = r;
  });
  return out;
}

/** Result of {@link psiCardinality} at the label holder (feature holders get the set sizes only). */
export interface PsiCardinality {
  /** Customers held by every party. */
  readonly size: number;
  /** The label holder's overlap with each feature holder (it learns these too; see below). */
  readonly pairwise: Readonly<Record<string, number>>;
  readonly seconds: number;
}

/**
 * Multi-party PSI cardinality (psi policy "size"): the label holder learns how many customers ALL parties
 * share, and no party learns which. The commutative-blinding construction of ECDH PSI (Huberman, Franklin &
 * Hogg 1999; the cardinality variant of De Cristofaro, Gasti & Tsudik 2012, PSI-CA, with shuffling at every
 * hop) extended to K+1 parties along chains:
 * - every party i blinds its own IDs, s_i·H(x), and shuffles them;
 * - party i's values then visit every other party in a fixed chain (the other feature holders in spec order,
 *   then the label holder; the label holder's own values visit the feature holders and come back), each hop
 *   applying its key and shuffling again, so they reach the label holder as (Π_j s_j)·H(x) in an order no
 *   single party knows;
 * - the label holder counts the values present in all K+1 fully blinded sets.
 * Who learns what (semi-honest parties, sealed parts so the relay sees sizes only): the label holder learns
 * |∩ all|, and, by comparing the fully blinded sets two at a time, every pairwise and partial overlap size;
 * it cannot map any value to one of its own IDs (its own set came back shuffled by the others). A feature
 * holder sees only values blinded by keys it lacks, so it learns the other parties' set sizes. No party
 * receives an ID or a position of the intersection. A malicious label holder can still probe with crafted
 * sets (a PSI-CA limitation; the feature holders answer one check per round).
 * @param ch - this party's channel
 * @param self - this party's id
 * @param parties - every party, label holder first (the same order at every party)
 * @param ids - this party's IDs
 * @param opts.set / session - hash domain, as in {@link psiWithPeer}
 * @returns at the label holder the counts; at a feature holder only `seconds` (size -1: it learns no count)
 */
export async function psiCardinality(ch: VerticalChannel, self: string, parties: readonly string[], ids: readonly string[], opts: { set: string; session?: string; multiplyBatch?: PsiPartyOptions['multiplyBatch'] }): Promise<PsiCardinality> {
  const started = performance.now();
  const lh = parties[0]!;
  if (!parties.includes(self) || new Set(parties).size !== parties.length || parties.length < 2) throw new FedmartError('CONFIG_ERROR', `PSI cardinality: ${self} must be one of ${parties.length} distinct parties`);
  // The chain of origin o: the parties o's blinded values visit after o, ending at the label holder.
  const chain = (o: string) => (o === lh ? [...parties.slice(1), lh] : [...parties.slice(1).filter((p) => p !== o), lh]);
  const party = new PsiParty(ids, { mode: 'size', domain: `${opts.session ?? ''}/${opts.set}`, ...(opts.multiplyBatch ? { multiplyBatch: opts.multiplyBatch } : {}) });
  const own = await party.blindOwnChunked(yieldToEventLoop, PSI_CHUNK);
  const first = chain(self)[0]!;
  await ch.send(first, 'psica.blinded', { set: opts.set, origin: self, hop: 1, count: own.length }, [packBlinded(own)]);
  const full = new Map<string, Set<string>>();
  const key = (v: Uint8Array) => Buffer.from(v).toString('hex');
  const stash = new Map<string, VerticalMessage<'psica.blinded'>>();
  // Every party handles the origins in the same order, so no two parties wait on each other.
  for (const o of parties) {
    const c = chain(o);
    const at = c.indexOf(self);
    if (at < 0) continue;
    const pred = at === 0 ? o : c[at - 1]!;
    let msg = stash.get(`${pred}|${o}`);
    while (msg === undefined) {
      const m = await ch.receive(pred, 'psica.blinded');
      if (m.body.set !== opts.set) throw new FedmartError('INVALID_MESSAGE', `PSI cardinality: ${pred} sent values for set "${m.body.set}", expected "${opts.set}"`);
      if (m.body.origin === o) msg = m;
      else if (parties.includes(m.body.origin) && !stash.has(`${pred}|${m.body.origin}`)) stash.set(`${pred}|${m.body.origin}`, m);
      else throw new FedmartError('INVALID_MESSAGE', `PSI cardinality: unexpected values of origin "${m.body.origin}" from ${pred}`);
    }
    stash.delete(`${pred}|${o}`);
    if (msg.body.hop !== at + 1) throw new FedmartError('INVALID_MESSAGE', `PSI cardinality: values of ${o} from ${pred} carry ${msg.body.hop} keys, expected ${at + 1}`);
    const values = unpackBlinded(msg.parts[0]!);
    if (o === lh && self === lh) {
      full.set(o, new Set(values.map(key))); // back home: every key applied
      continue;
    }
    const next = await party.blindOtherChunked(values, yieldToEventLoop, PSI_CHUNK); // shuffled (mode "size")
    if (self === lh) full.set(o, new Set(next.map(key)));
    else await ch.send(c[at + 1]!, 'psica.blinded', { set: opts.set, origin: o, hop: at + 2, count: next.length }, [packBlinded(next)]);
  }
  const seconds = (performance.now() - started) / 1000;
  if (self !== lh) return { size: -1, pairwise: {}, seconds };
  const mine = full.get(lh)!;
  const sets = parties.slice(1).map((p) => full.get(p)!);
  let size = 0;
  for (const v of mine) if (sets.every((s) => s.has(v))) size++;
  const pairwise = Object.fromEntries(parties.slice(1).map((p, k) => [p, [...mine].filter((v) => sets[k]!.has(v)).length]));
  return { size, pairwise, seconds };
}
