/**
 * The coordinator's Ed25519 log key (issue 13, item 4): it signs every audit
 * tree head. Kept apart from the token signing key (`auth.ts`): a key that
 * signs JWTs never signs another protocol's messages. Generated on first start
 * in the data dir (`log-key.json`, 0600); in memory when there is none.
 */
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { bytesToHex, hexToBytes } from '@fedmart/shared/crypto/bytes';
import { generateEd25519KeyPair, getEd25519PublicKey, type Ed25519KeyPair } from '@fedmart/shared/crypto/ed25519';
import { FedmartError } from '@fedmart/shared/errors';

/** File name of the log key inside the data dir. */
export const LOG_KEY_FILE = 'log-key.json';

/**
 * Load the log key from the data dir, creating it on first start.
 * @param dataDir - the (prepared) data dir; null: an in-memory key (tests)
 * @returns the key pair
 * @throws FedmartError CONFIG_ERROR on an unreadable key file (it is never overwritten: heads partners hold were signed with it)
 */
export function openLogKey(dataDir: string | null): Ed25519KeyPair {
  if (dataDir === null) return generateEd25519KeyPair();
  const file = path.join(dataDir, LOG_KEY_FILE);
  if (existsSync(file)) {
    try {
      const pair = logKeyFromJson(readFileSync(file, 'utf8'));
      chmodSync(file, 0o600);
      return pair;
    } catch (cause) {
      throw new FedmartError('CONFIG_ERROR', `cannot read the audit log key ${file}: ${(cause as Error).message}; restore it from backup (partners hold tree heads signed with it, a new key makes them refuse this coordinator)`, { cause });
    }
  }
  const pair = generateEd25519KeyPair();
  writeFileSync(file, logKeyJson(pair), { mode: 0o600, flag: 'wx' });
  return pair;
}

/**
 * The stored form of a log key (the data dir's `log-key.json`, the shared secret of shared-secrets.ts).
 * @param pair - the key pair
 * @returns one JSON line
 */
export function logKeyJson(pair: Ed25519KeyPair): string {
  return JSON.stringify({ algorithm: 'Ed25519', purpose: 'fedmart audit tree heads', secretKey: bytesToHex(pair.secretKey), publicKey: bytesToHex(pair.publicKey) }) + '\n';
}

/**
 * Parse {@link logKeyJson}'s form (the public key is derived again from the secret one).
 * @throws Error when it is not JSON with a 32-byte hex `secretKey`
 */
export function logKeyFromJson(text: string): Ed25519KeyPair {
  const raw = JSON.parse(text) as { secretKey?: unknown };
  const secretKey = hexToBytes(String(raw.secretKey));
  if (secretKey.length !== 32) throw new Error(`the secret key has ${secretKey.length} bytes, not 32`);
  return { secretKey, publicKey: getEd25519PublicKey(secretKey) };
}
