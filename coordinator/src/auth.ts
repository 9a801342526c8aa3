/**
 * Tokens: EdDSA (Ed25519) JWTs signed and verified with jose (RFC 8037, RFC 7519).
 * The coordinator's signing key is generated on first start and kept in the
 * data dir (`signing-key.jwk`, mode 0600) — never in the repository.
 *
 * Claims: `sub` (partner id or operator name), `role`, `jti` (every token:
 * a revoked jti is refused whatever the role, see `db/revocations.ts`), and
 * for partners `fed` (federation id; the jti is also the enrollment's token
 * id, checked against the enrollments table).
 */
import { SignJWT, jwtVerify, generateKeyPair, exportJWK, importJWK, type JWK, errors as joseErrors } from 'jose';
import { randomUUID, type webcrypto } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { FedmartError } from '@fedmart/shared/errors';
import { ROLES, type Role } from '@fedmart/shared/protocol';

const ISSUER = 'fedmart-coordinator';
const AUDIENCE = 'fedmart';
/** File name of the token signing key inside the data dir. */
export const SIGNING_KEY_FILE = 'signing-key.jwk';
const KEY_FILE = SIGNING_KEY_FILE;

/** Verified token contents. */
export interface Principal {
  sub: string;
  role: Role;
  /** Federation id (partner tokens). */
  fed?: string;
  /** Token id (every verified token has one). */
  jti?: string;
  exp?: number;
}

/** Options of {@link TokenAuthority.open}. */
export interface TokenAuthorityOptions {
  /** Whether a token id was revoked; checked on every {@link TokenAuthority.verify} (default: nothing is revoked). A promise for a store that answers asynchronously (`AsyncStore.isTokenRevoked`, PostgreSQL). */
  isRevoked?: (jti: string) => boolean | Promise<boolean>;
}

/** Signs and verifies fedmart tokens. */
export class TokenAuthority {
  private readonly isRevoked: (jti: string) => boolean | Promise<boolean>;

  private constructor(
    private readonly privateKey: CryptoKey,
    private readonly publicKey: CryptoKey,
    opts: TokenAuthorityOptions,
  ) {
    this.isRevoked = opts.isRevoked ?? (() => false);
  }

  /**
   * Load the signing key from `dataDir`, or create it on first start.
   * @param dataDir - directory for the key file; `null` keeps the key in memory (tests)
   * @param opts - the revocation check
   * @throws FedmartError CONFIG_ERROR when the key file exists but cannot be read
   */
  static async open(dataDir: string | null, opts: TokenAuthorityOptions = {}): Promise<TokenAuthority> {
    if (dataDir !== null) {
      const file = path.join(dataDir, KEY_FILE);
      try {
        return await TokenAuthority.fromJwk(JSON.parse(await readFile(file, 'utf8')) as JWK, opts);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
          throw new FedmartError('CONFIG_ERROR', `cannot read the signing key ${file}: ${(err as Error).message}; restore it from backup or remove it to issue new keys (all existing tokens become invalid)`, { cause: err });
        }
      }
      const jwk = await TokenAuthority.generateJwk();
      await mkdir(dataDir, { recursive: true });
      await writeFile(file, JSON.stringify(jwk), { mode: 0o600, flag: 'wx' });
      return TokenAuthority.fromJwk(jwk, opts);
    }
    const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: false });
    return new TokenAuthority(privateKey as CryptoKey, publicKey as CryptoKey, opts);
  }

  /**
   * An authority over a stored private JWK (the data dir's file, or the shared secret of several
   * coordinators on one PostgreSQL, shared-secrets.ts).
   * @param jwk - the Ed25519 private key as a JWK (with `d`)
   * @param opts - the revocation check
   * @throws Error when the JWK is not an Ed25519 private key
   */
  static async fromJwk(jwk: JWK, opts: TokenAuthorityOptions = {}): Promise<TokenAuthority> {
    if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.d !== 'string') throw new Error('not an Ed25519 private key (JWK kty OKP, crv Ed25519, with d)');
    const priv = (await importJWK(jwk, 'EdDSA')) as CryptoKey;
    const { d: _d, ...pubJwk } = jwk;
    const pub = (await importJWK(pubJwk, 'EdDSA')) as CryptoKey;
    return new TokenAuthority(priv, pub, opts);
  }

  /** A new Ed25519 signing key as a private JWK (what {@link fromJwk} takes and the data dir's file holds). */
  static async generateJwk(): Promise<JWK> {
    const { privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
    return exportJWK(privateKey);
  }

  /**
   * Issue a token.
   * @param p - subject, role, optional federation
   * @param expiresInSeconds - lifetime
   * @returns the compact JWS and its id
   */
  async issue(p: { sub: string; role: Role; fed?: string }, expiresInSeconds: number): Promise<{ token: string; jti: string; expiresAt: number }> {
    const jti = randomUUID();
    const now = Math.floor(Date.now() / 1000);
    const claims: Record<string, unknown> = { role: p.role };
    if (p.fed !== undefined) claims.fed = p.fed;
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT' })
      .setSubject(p.sub)
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setIssuedAt(now)
      .setExpirationTime(now + expiresInSeconds)
      .setJti(jti)
      .sign(this.privateKey);
    return { token, jti, expiresAt: (now + expiresInSeconds) * 1000 };
  }

  /**
   * Verify a token's signature, issuer, audience, expiry and claims, and that its jti was not revoked.
   * @throws FedmartError UNAUTHENTICATED naming what is wrong
   */
  async verify(token: unknown): Promise<Principal> {
    const principal = await this.#verifySignedClaims(token);
    // Outside the token checks: a store that cannot answer is its own error (500), not an "invalid token".
    if (await this.isRevoked(principal.jti!)) throw new FedmartError('UNAUTHENTICATED', `token ${principal.jti} was revoked; ask the operator for a new one`);
    return principal;
  }

  async #verifySignedClaims(token: unknown): Promise<Principal> {
    if (typeof token !== 'string' || token.length === 0) {
      throw new FedmartError('UNAUTHENTICATED', 'missing token: send "Authorization: Bearer <token>" (REST) or auth: { token } (Socket.IO)');
    }
    if (token.length > 8192) throw new FedmartError('UNAUTHENTICATED', 'token too long; pass the token exactly as issued');
    return this.verifySigned(token);
  }

  /** The token's claims, checked (signature, issuer, audience, expiry, role, subject, jti). */
  private async verifySigned(token: string): Promise<Principal> {
    try {
      const { payload } = await jwtVerify(token, this.publicKey, { issuer: ISSUER, audience: AUDIENCE, algorithms: ['EdDSA'] });
      const role = payload.role;
      if (typeof role !== 'string' || !(ROLES as readonly string[]).includes(role)) throw new FedmartError('UNAUTHENTICATED', 'token has no valid role claim; ask the operator for a new token');
      if (typeof payload.sub !== 'string') throw new FedmartError('UNAUTHENTICATED', 'token has no subject; ask the operator for a new token');
      const principal: Principal = { sub: payload.sub, role: role as Role };
      if (typeof payload.fed === 'string') principal.fed = payload.fed;
      if (typeof payload.jti !== 'string') throw new FedmartError('UNAUTHENTICATED', 'token has no id (jti) so it could not be revoked; ask the operator for a new token');
      principal.jti = payload.jti;
      if (typeof payload.exp === 'number') principal.exp = payload.exp;
      return principal;
    } catch (err) {
      if (err instanceof FedmartError) throw err;
      if (err instanceof joseErrors.JWTExpired) throw new FedmartError('UNAUTHENTICATED', 'token expired; ask the operator for a new enrollment token', { cause: err });
      if (err instanceof joseErrors.JWSSignatureVerificationFailed) throw new FedmartError('UNAUTHENTICATED', 'token signature is invalid (was it issued by another coordinator or data dir?); ask this coordinator\'s operator for a token', { cause: err });
      throw new FedmartError('UNAUTHENTICATED', `invalid token: ${(err as Error).message}; pass the token exactly as issued`, { cause: err });
    }
  }
}
