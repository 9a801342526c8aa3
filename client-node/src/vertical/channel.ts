/**
 * How vertical parties talk: a {@link VerticalChannel} sends typed messages
 * (JSON body + binary parts, `shared/protocol-vertical`) to a named peer and
 * receives the next message from a named peer, parsed and checked against
 * the type the protocol expects at that point.
 *
 * Implemented: {@link createInMemoryVerticalHub}, which passes every message
 * through its wire form (header text + copied parts) and parses it on
 * receipt exactly as a network transport would, with an optional tap that
 * records every wire message (tests use it to prove no ID travels in the
 * clear).
 *
 * The relay through the coordinator's Socket.IO server (`/vertical`) is
 * `socket-channel.ts`: the relay only reads the header's `session`, `from`,
 * `to` and `seq`, which say nothing about customers; the parts (partial
 * logits, embeddings, blinded IDs, ciphertexts) are sealed end to end
 * between the two parties with ChaCha20-Poly1305 under an X25519-agreed key,
 * so the coordinator forwards them blind.
 */
import { FedmartError } from '@fedmart/shared/errors';
import { encodeVerticalMessage, parseVerticalMessage, type VerticalBody, type VerticalMessage, type VerticalType, type VerticalWireMessage } from '@fedmart/shared/protocol-vertical';

/** One party's end of the vertical message bus. */
export interface VerticalChannel {
  /** This party's id. */
  readonly self: string;
  /**
   * Send a message to a peer.
   * @param to - the peer's id
   * @param type - message type
   * @param body - its body (validated before sending)
   * @param parts - binary parts
   */
  send<T extends VerticalType>(to: string, type: T, body: VerticalBody<T>, parts?: readonly Uint8Array[]): Promise<void>;
  /**
   * Receive the next message from `from`, which must be of `type`.
   * @throws FedmartError INVALID_MESSAGE if another type arrives; the peer's code if it sent `error`
   */
  receive<T extends VerticalType>(from: string, type: T): Promise<VerticalMessage<T>>;
  /**
   * Receive the next message from `from`, whatever its type (for a serving loop).
   * @throws FedmartError with the peer's code if it sent `error`
   */
  receiveAny(from: string): Promise<VerticalMessage>;
}

/** An in-process hub connecting several parties' channels. */
export interface InMemoryVerticalHub {
  /** The channel of one party (created on first use). */
  channel(party: string): VerticalChannel;
  /** Reject every pending and future receive (e.g. when one party fails). */
  close(reason: Error): void;
}

/** Options of {@link createInMemoryVerticalHub}. */
export interface InMemoryHubOptions {
  /** Session id stamped on every message. Default "vertical". */
  readonly session?: string;
  /** Called with every message in its wire form, before delivery (a passive observer). */
  readonly tap?: (wire: VerticalWireMessage) => void;
}

interface Mailbox {
  queue: VerticalWireMessage[];
  waiter: { resolve: (m: VerticalWireMessage) => void; reject: (e: Error) => void } | undefined;
}

/**
 * Create an in-memory hub. Messages are delivered in order per (sender,
 * receiver) pair, through their wire form.
 * @param opts - session id and an optional tap
 * @returns the hub
 * @example
 * const hub = createInMemoryVerticalHub();
 * const a = hub.channel('platform'), b = hub.channel('brand');
 */
export function createInMemoryVerticalHub(opts: InMemoryHubOptions = {}): InMemoryVerticalHub {
  const session = opts.session ?? 'vertical';
  const boxes = new Map<string, Mailbox>(); // key: `${to}\u0000${from}`
  const seqs = new Map<string, number>();
  let closed: Error | undefined;
  const box = (to: string, from: string): Mailbox => {
    const k = `${to}\u0000${from}`;
    let b = boxes.get(k);
    if (b === undefined) {
      b = { queue: [], waiter: undefined };
      boxes.set(k, b);
    }
    return b;
  };
  const next = (self: string, from: string): Promise<VerticalMessage> => {
    if (closed) return Promise.reject(closed);
    const b = box(self, from);
    const wire = b.queue.shift();
    const parse = (w: VerticalWireMessage): VerticalMessage => {
      const m = parseVerticalMessage({ header: w.header, parts: w.parts });
      if (m.from !== from || m.to !== self || m.session !== session) {
        throw new FedmartError('INVALID_MESSAGE', `vertical: expected a message from ${from} to ${self} in session ${session}, got one from ${m.from} to ${m.to} in ${m.session}`);
      }
      if (m.type === 'error') {
        const body = m.body as VerticalBody<'error'>;
        throw new FedmartError('UNAVAILABLE', `vertical peer ${from} failed: ${body.code}: ${body.message}`);
      }
      return m;
    };
    if (wire !== undefined) {
      try {
        return Promise.resolve(parse(wire));
      } catch (err) {
        return Promise.reject(err as Error);
      }
    }
    return new Promise<VerticalWireMessage>((resolve, reject) => {
      b.waiter = { resolve, reject };
    }).then(parse);
  };
  const channels = new Map<string, VerticalChannel>();
  return {
    channel(self) {
      let ch = channels.get(self);
      if (ch !== undefined) return ch;
      ch = {
        self,
        async send(to, type, body, parts = []) {
          if (closed) throw closed;
          const key = `${self}\u0000${to}`;
          const seq = seqs.get(key) ?? 0;
          seqs.set(key, seq + 1);
          const wire = encodeVerticalMessage({ session, from: self, to, seq, type, body, parts });
          // Copy the parts: the receiver must never share memory with the sender.
          const copied: VerticalWireMessage = { header: wire.header, parts: wire.parts.map((p) => p.slice()) };
          opts.tap?.(copied);
          const b = box(to, self);
          if (b.waiter !== undefined) {
            const w = b.waiter;
            b.waiter = undefined;
            w.resolve(copied);
          } else b.queue.push(copied);
        },
        async receive(from, type) {
          const m = await next(self, from);
          if (m.type !== type) {
            throw new FedmartError('INVALID_MESSAGE', `vertical: ${self} expected ${type} from ${from}, got ${m.type}; the parties are out of step (run the same protocol version and model)`);
          }
          return m as VerticalMessage<typeof type>;
        },
        receiveAny(from) {
          return next(self, from);
        },
      };
      channels.set(self, ch);
      return ch;
    },
    close(reason) {
      closed = reason;
      for (const b of boxes.values()) {
        if (b.waiter !== undefined) {
          const w = b.waiter;
          b.waiter = undefined;
          w.reject(reason);
        }
      }
    },
  };
}
