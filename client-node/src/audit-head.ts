/**
 * A partner's watch over the coordinator's audit log (issue 13, item 4): the
 * newest signed tree head it has seen is kept in its data dir
 * (`audit-head.json`), and at every connection it asks the coordinator for
 * the current head and a consistency proof from the one it holds. A head
 * signed by another key, a smaller log, or a proof that fails means history
 * this partner saw was rewritten or truncated: the partner refuses to train
 * and says why, until an operator restores the log (then the proof verifies
 * again) or the partner deliberately drops its stored head after the
 * operator explained what happened (delete the file, as with a changed key).
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { makeDirsSync } from './dirs.ts';
import { join } from 'node:path';
import { ConsistencyProofSchema, SignedTreeHeadSchema, checkHeadExtends, type SignedTreeHead } from '@fedmart/shared/audit-log';
import { FedmartError } from '@fedmart/shared/errors';

/** File name of the stored head inside the partner's data dir. */
export const AUDIT_HEAD_FILE = 'audit-head.json';

/** Where a partner keeps the newest tree head it has seen, per coordinator log key. */
export class AuditHeadStore {
  #head: SignedTreeHead | null;
  readonly #file: string | null;

  private constructor(head: SignedTreeHead | null, file: string | null) {
    this.#head = head;
    this.#file = file;
  }

  /**
   * Open the store in a data dir.
   * @throws FedmartError CONFIG_ERROR on a corrupt file (never overwritten silently)
   */
  static open(dir: string): AuditHeadStore {
    makeDirsSync(dir, 0o700);
    const file = join(dir, AUDIT_HEAD_FILE);
    if (!existsSync(file)) return new AuditHeadStore(null, file);
    const parsed = SignedTreeHeadSchema.safeParse((() => { try { return JSON.parse(readFileSync(file, 'utf8')); } catch { return null; } })());
    if (!parsed.success) throw new FedmartError('CONFIG_ERROR', `the stored audit tree head ${file} is corrupt; restore it (deleting it makes this partner trust the coordinator's log as it is now)`);
    return new AuditHeadStore(parsed.data, file);
  }

  /** A store held in memory only (tests, simulations): it still checks across reconnects of one process. */
  static ephemeral(): AuditHeadStore {
    return new AuditHeadStore(null, null);
  }

  /** The newest head seen (null: never connected). */
  get head(): SignedTreeHead | null {
    return this.#head;
  }

  /** Keep a newer head (already checked to extend the stored one). */
  save(head: SignedTreeHead): void {
    this.#head = head;
    if (!this.#file) return;
    const tmp = this.#file + '.tmp';
    writeFileSync(tmp, JSON.stringify(head, null, 2) + '\n', { mode: 0o600 });
    renameSync(tmp, this.#file);
  }
}

async function getJson(url: string, token: string): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  } catch (err) {
    throw new FedmartError('UNAVAILABLE', `cannot fetch ${url}: ${(err as Error).message}`, { cause: err });
  }
  const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
  if (!res.ok) throw new FedmartError(res.status === 404 ? 'NOT_FOUND' : 'UNAVAILABLE', `${url} answered ${res.status}: ${body?.error?.message ?? 'no message'}`);
  return body;
}

/**
 * Check the coordinator's current signed tree head against the stored one and keep it when it extends it.
 * @param args.coordinatorUrl - the coordinator's base URL
 * @param args.token - this partner's enrollment token
 * @param args.store - where the newest head is kept
 * @returns the new head and the size this partner held before (0: first contact)
 * @throws FedmartError CONFLICT naming what is wrong when the log does not extend what this partner saw
 */
export async function checkCoordinatorAuditLog(args: { coordinatorUrl: string; token: string; store: AuditHeadStore }): Promise<{ head: SignedTreeHead; previousSize: number }> {
  const base = args.coordinatorUrl.replace(/\/+$/, '') + '/api/v1/audit';
  const older = args.store.head;
  let newer: SignedTreeHead;
  try {
    newer = SignedTreeHeadSchema.parse((await getJson(`${base}/sth`, args.token) as { head?: unknown }).head);
  } catch (err) {
    throw refusal(err instanceof FedmartError ? err.message : `the coordinator's tree head is malformed`, older);
  }
  let proof: string[] = [];
  if (older !== null && older.size > 0 && newer.size >= older.size) {
    try {
      proof = ConsistencyProofSchema.parse(await getJson(`${base}/consistency?from=${older.size}&to=${newer.size}`, args.token)).proof;
    } catch (err) {
      throw refusal(`the coordinator cannot prove its audit log extends the ${older.size} entries this partner saw (${err instanceof FedmartError ? err.message : 'malformed proof'})`, older);
    }
  }
  const problem = checkHeadExtends(older, newer, proof);
  if (problem) throw refusal(problem, older);
  if (older === null || newer.size > older.size || newer.timestamp > older.timestamp) args.store.save(newer);
  return { head: newer, previousSize: older?.size ?? 0 };
}

function refusal(reason: string, older: SignedTreeHead | null): FedmartError {
  return new FedmartError('CONFLICT', `refusing to train: ${reason}. An operator must restore the coordinator's audit log (fedmart audit verify --data-dir <coordinator dir> names the first bad entry); this partner keeps the head it holds (size ${older?.size ?? 0})`, { details: { heldSize: older?.size ?? 0, heldRoot: older?.root ?? null } });
}
