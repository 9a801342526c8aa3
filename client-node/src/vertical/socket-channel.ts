/**
 * A {@link VerticalChannel} through the coordinator's vertical relay
 * (Socket.IO namespace `/vertical`, `shared/protocol-vertical-relay`), with
 * every binary part sealed end to end between the two parties.
 *
 * Keys: each channel generates a fresh X25519 key pair (RFC 7748) and
 * announces the public key through the relay; the key of a pair of parties
 * is HKDF-SHA256 (RFC 5869) of their X25519 shared secret, bound to the job
 * and both party names ({@link verticalPairKey}). Each part is sealed with
 * ChaCha20-Poly1305 (RFC 8439) under that key with a fresh random nonce and
 * associated data binding the full header text (sender, recipient, session,
 * sequence number, type and body) and the part's index and count, so the
 * relay can neither read the parts nor move them to another message,
 * position, direction or job undetected; the receiver also requires
 * consecutive sequence numbers, which stops replays and drops.
 *
 * Trust: the coordinator is honest-but-curious and trusted to relay the
 * public keys faithfully; a relay that substituted its own keys could read
 * the parts (a man in the middle), which key pinning out of band would stop.
 * The relay sees headers (types, sizes, steps, hyper-parameters) and the
 * traffic pattern, never IDs, features, labels, logits, embeddings or
 * gradients.
 */
import { io, type Socket } from 'socket.io-client';
import { ERROR_CODES, FedmartError, type ErrorCode } from '@fedmart/shared/errors';
import type { Ack } from '@fedmart/shared/protocol';
import { encodeVerticalMessage, parseVerticalMessage, type VerticalBody, type VerticalMessage } from '@fedmart/shared/protocol-vertical';
import {
  RelayInboundFrameSchema, RelayPeerKeySchema, RelayWelcomeSchema, VERTICAL_NAMESPACE,
  type RelayInboundFrame, type VerticalRelayClientEvents, type VerticalRelayServerEvents,
} from '@fedmart/shared/protocol-vertical-relay';
import { generateX25519KeyPair, x25519SharedSecret, type X25519KeyPair } from '@fedmart/shared/crypto/x25519';
import { hkdfSha256 } from '@fedmart/shared/crypto/kdf';
import { AEAD_KEY_BYTES, aeadOpen, aeadSeal } from '@fedmart/shared/crypto/aead';
import { concatBytes, lengthPrefixed, u32be } from '@fedmart/shared/crypto/bytes';
import type { VerticalChannel } from './channel.ts';

const KEY_INFO = 'fedmart/vertical/v1/pair-key';
const PART_PURPOSE = 'fedmart/vertical/v1/part';

/**
 * The AEAD key two parties share for one job: HKDF-SHA256 of their X25519
 * shared secret with info = purpose ‖ job ‖ both names in sorted order (the
 * same on both sides; direction is bound per message by the associated data).
 * @param secretKey - our X25519 secret key
 * @param peerPublicKey - the peer's X25519 public key
 * @param job - the job id (session)
 * @param a - one party name
 * @param b - the other party name
 * @returns a 32-byte key
 * @throws FedmartError CRYPTO_ERROR for a small-order peer key
 */
export function verticalPairKey(secretKey: Uint8Array, peerPublicKey: Uint8Array, job: string, a: string, b: string): Uint8Array {
  const [lo, hi] = a < b ? [a, b] : [b, a];
  const info = concatBytes(lengthPrefixed(KEY_INFO), lengthPrefixed(job), lengthPrefixed(lo), lengthPrefixed(hi));
  return hkdfSha256(x25519SharedSecret(secretKey, peerPublicKey), new Uint8Array(0), info, AEAD_KEY_BYTES);
}

function partAd(header: string, index: number, count: number): Uint8Array {
  return concatBytes(lengthPrefixed(PART_PURPOSE), lengthPrefixed(header), u32be(index), u32be(count));
}

/**
 * Seal every part of a message for its recipient.
 * @param key - the pair key ({@link verticalPairKey})
 * @param header - the exact header text that travels with the parts
 * @param parts - plaintext parts
 * @returns one `nonce ‖ ciphertext ‖ tag` box per part
 */
export function sealVerticalParts(key: Uint8Array, header: string, parts: readonly Uint8Array[]): Uint8Array[] {
  return parts.map((p, i) => aeadSeal(key, p, partAd(header, i, parts.length)));
}

/**
 * Open the parts of a received message.
 * @param key - the pair key
 * @param header - the header text received with the parts
 * @param parts - sealed boxes
 * @returns the plaintext parts
 * @throws FedmartError CRYPTO_ERROR when a box does not verify (wrong key, moved or tampered)
 */
export function openVerticalParts(key: Uint8Array, header: string, parts: readonly Uint8Array[]): Uint8Array[] {
  return parts.map((p, i) => {
    if (p.byteLength < 28) throw new FedmartError('CRYPTO_ERROR', `vertical: part ${i} has ${p.byteLength} bytes, too short for a sealed box; the relay or the peer is faulty`);
    return aeadOpen(key, p, partAd(header, i, parts.length));
  });
}

/** Options of {@link connectVerticalChannel}. */
export interface SocketChannelOptions {
  /** Coordinator base URL, e.g. http://127.0.0.1:7300. */
  readonly url: string;
  /** The party's enrollment token for the vertical job. */
  readonly token: string;
  /** How long to wait for the handshake, a peer's key and a send's ack (default 60 s). */
  readonly timeoutMs?: number;
  /** This channel's X25519 key pair (default: a fresh one). Tests pass one to check the sealing. */
  readonly keyPair?: X25519KeyPair;
  /** A data session of a vertical federation (round `r<N>`, scoring `p<K>`): the relay job is `<federation>/<session>`. */
  readonly session?: string;
}

/** A {@link VerticalChannel} over the coordinator relay. */
export interface SocketVerticalChannel extends VerticalChannel {
  /** The job id (also the session of every message). */
  readonly job: string;
  /** Resolve once every listed party has announced its key. */
  waitForPeers(parties: readonly string[]): Promise<void>;
  /** Disconnect; pending receives reject. */
  close(): void;
}

interface Box {
  queue: RelayInboundFrame[];
  waiter: { resolve: (f: RelayInboundFrame) => void; reject: (e: Error) => void } | undefined;
  left: boolean;
}

/**
 * Connect a party to the relay, announce its public key, and return its channel.
 * @param o - URL, enrollment token, timeout, optional key pair
 * @returns the channel, `self` = the party name the coordinator authenticated
 * @throws FedmartError with the relay's code when the handshake is refused (bad token, not a vertical job, …)
 * @example
 * const ch = await connectVerticalChannel({ url, token });
 * await ch.waitForPeers(['brand']);
 * const lh = new LabelHolder(ch, { featureHolders: ['brand'], sets, session: ch.job });
 */
export async function connectVerticalChannel(o: SocketChannelOptions): Promise<SocketVerticalChannel> {
  const timeoutMs = o.timeoutMs ?? 60_000;
  const keyPair = o.keyPair ?? generateX25519KeyPair();
  const socket: Socket<VerticalRelayServerEvents, VerticalRelayClientEvents> = io(`${o.url}${VERTICAL_NAMESPACE}`, {
    auth: { token: o.token, ...(o.session !== undefined ? { session: o.session } : {}) }, transports: ['websocket'], reconnection: false, forceNew: true,
  });
  const peerKeys = new Map<string, Uint8Array>();
  const pairKeys = new Map<string, Uint8Array>();
  const keyWaiters = new Map<string, (() => void)[]>();
  const boxes = new Map<string, Box>();
  const sendSeq = new Map<string, number>();
  const sendTail = new Map<string, Promise<void>>();
  const recvSeq = new Map<string, number>();
  let closed: Error | undefined;
  let self = '';
  let job = '';

  const box = (from: string): Box => {
    let b = boxes.get(from);
    if (b === undefined) boxes.set(from, (b = { queue: [], waiter: undefined, left: false }));
    return b;
  };
  const addKey = (party: string, publicKey: Uint8Array) => {
    peerKeys.set(party, new Uint8Array(publicKey));
    pairKeys.delete(party);
    for (const w of keyWaiters.get(party) ?? []) w();
    keyWaiters.delete(party);
  };
  const failAll = (err: Error) => {
    closed ??= err;
    for (const b of boxes.values()) {
      const w = b.waiter;
      b.waiter = undefined;
      w?.reject(closed);
    }
    for (const ws of keyWaiters.values()) for (const w of ws) w();
    keyWaiters.clear();
  };

  // Listen before the welcome: a peer's key or message can arrive in the same network read as the welcome,
  // and would be dropped if the listeners were only registered once the welcome promise settled.
  socket.on('peer-key', (k: unknown) => {
    const p = RelayPeerKeySchema.safeParse(normalizeBinary(k));
    if (p.success && p.data.party !== self) addKey(p.data.party, p.data.publicKey);
  });
  socket.on('vmsg', (raw: unknown) => {
    const p = RelayInboundFrameSchema.safeParse(normalizeBinary(raw));
    if (!p.success) return; // the receiver cannot attribute a malformed frame; the relay validated its own output
    const b = box(p.data.from);
    if (b.waiter !== undefined) {
      const w = b.waiter;
      b.waiter = undefined;
      w.resolve(p.data);
    } else b.queue.push(p.data);
  });
  socket.on('peer-left', (m: unknown) => {
    const party = (m as { party?: unknown } | null)?.party;
    if (typeof party !== 'string') return;
    const b = box(party);
    b.left = true;
    const w = b.waiter;
    b.waiter = undefined;
    w?.reject(new FedmartError('UNAVAILABLE', `vertical peer ${party} disconnected from the relay before sending the expected message`));
  });
  const welcome = await new Promise<{ job: string; party: string }>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new FedmartError('UNAVAILABLE', `vertical relay at ${o.url}: no welcome within ${timeoutMs} ms; check the URL and that the coordinator is running`));
    }, timeoutMs);
    socket.once('welcome', (w: unknown) => {
      clearTimeout(timer);
      const p = RelayWelcomeSchema.safeParse(normalizeBinary(w));
      if (!p.success) {
        socket.close();
        reject(new FedmartError('PROTOCOL_MISMATCH', 'vertical relay: malformed welcome; upgrade fedmart on one side'));
        return;
      }
      for (const k of p.data.peers) addKey(k.party, k.publicKey);
      resolve({ job: p.data.job, party: p.data.party });
    });
    socket.once('connect_error', (err: Error & { data?: { code?: string; message?: string } }) => {
      clearTimeout(timer);
      socket.close();
      const code = err.data?.code;
      const known = code !== undefined && (ERROR_CODES as readonly string[]).includes(code);
      reject(new FedmartError(known ? (code as ErrorCode) : 'UNAVAILABLE', `vertical relay refused the connection: ${err.data?.message ?? err.message}`));
    });
  });
  self = welcome.party;
  job = welcome.job;

  socket.on('disconnect', (reason) => failAll(new FedmartError('UNAVAILABLE', `vertical relay connection of ${self} closed (${reason})`)));

  const ackOrThrow = (a: Ack, what: string) => {
    if (!a.ok) throw new FedmartError((ERROR_CODES as readonly string[]).includes(a.error.code) ? (a.error.code as ErrorCode) : 'INTERNAL', `vertical relay refused ${what}: ${a.error.message}`);
  };
  ackOrThrow(await socket.timeout(timeoutMs).emitWithAck('key', keyPair.publicKey), 'the public key');

  const waitKey = (party: string): Promise<void> => {
    if (peerKeys.has(party)) return Promise.resolve();
    if (closed) return Promise.reject(closed);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new FedmartError('UNAVAILABLE', `vertical: party ${party} did not join job ${job} within ${timeoutMs} ms; start it with its enrollment token`)), timeoutMs);
      const list = keyWaiters.get(party) ?? [];
      list.push(() => {
        clearTimeout(timer);
        if (peerKeys.has(party)) resolve();
        else reject(closed ?? new FedmartError('UNAVAILABLE', 'vertical relay connection closed'));
      });
      keyWaiters.set(party, list);
    });
  };
  const pairKey = async (party: string): Promise<Uint8Array> => {
    await waitKey(party);
    let k = pairKeys.get(party);
    if (k === undefined) pairKeys.set(party, (k = verticalPairKey(keyPair.secretKey, peerKeys.get(party)!, job, self, party)));
    return k;
  };

  const nextFrame = (from: string): Promise<RelayInboundFrame> => {
    const b = box(from);
    const f = b.queue.shift();
    if (f !== undefined) return Promise.resolve(f);
    if (closed) return Promise.reject(closed);
    if (b.left) return Promise.reject(new FedmartError('UNAVAILABLE', `vertical peer ${from} has left the relay`));
    return new Promise((resolve, reject) => {
      b.waiter = { resolve, reject };
    });
  };
  const next = async (from: string): Promise<VerticalMessage> => {
    const f = await nextFrame(from);
    const key = await pairKey(from);
    const parts = openVerticalParts(key, f.header, f.parts);
    const m = parseVerticalMessage({ header: f.header, parts });
    if (f.from !== from || m.from !== from || m.to !== self || m.session !== job) {
      throw new FedmartError('INVALID_MESSAGE', `vertical: expected a message from ${from} to ${self} in job ${job}, got one relayed from ${f.from} (header: ${m.from} to ${m.to} in ${m.session})`);
    }
    const want = recvSeq.get(from) ?? 0;
    if (m.seq !== want) throw new FedmartError('INVALID_MESSAGE', `vertical: expected message ${want} from ${from}, got ${m.seq}; a message was replayed or lost in the relay`);
    recvSeq.set(from, want + 1);
    if (m.type === 'error') {
      const body = m.body as VerticalBody<'error'>;
      throw new FedmartError('UNAVAILABLE', `vertical peer ${from} failed: ${body.code}: ${body.message}`);
    }
    return m;
  };

  return {
    get self() {
      return self;
    },
    job,
    async send(to, type, body, parts = []) {
      if (closed) throw closed;
      // Sequence numbers are taken in call order and frames leave in that order (one chain per recipient).
      const seq = sendSeq.get(to) ?? 0;
      const wire = encodeVerticalMessage({ session: job, from: self, to, seq, type, body, parts });
      sendSeq.set(to, seq + 1);
      const prev = sendTail.get(to) ?? Promise.resolve();
      const mine = prev.catch(() => undefined).then(async () => {
        const key = await pairKey(to);
        const sealed = sealVerticalParts(key, wire.header, wire.parts);
        ackOrThrow(await socket.timeout(timeoutMs).emitWithAck('vmsg', { header: wire.header, parts: sealed }), `a ${type} message to ${to}`);
      });
      sendTail.set(to, mine);
      await mine;
    },
    async receive(from, type) {
      const m = await next(from);
      if (m.type !== type) {
        throw new FedmartError('INVALID_MESSAGE', `vertical: ${self} expected ${type} from ${from}, got ${m.type}; the parties are out of step (run the same protocol version and model)`);
      }
      return m as VerticalMessage<typeof type>;
    },
    receiveAny(from) {
      return next(from);
    },
    async waitForPeers(parties) {
      await Promise.all(parties.map(waitKey));
    },
    close() {
      failAll(new FedmartError('UNAVAILABLE', `vertical channel of ${self} closed`));
      socket.close();
    },
  };
}

/** Socket.IO delivers binary attachments as Buffer or ArrayBuffer; make every one a Uint8Array. */
function normalizeBinary(v: unknown): unknown {
  if (v instanceof Uint8Array) return v;
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (Array.isArray(v)) return v.map(normalizeBinary);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalizeBinary(x)]));
  return v;
}
