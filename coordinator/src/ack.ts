/**
 * Answer a Socket.IO acknowledgement with the outcome of a handler that may be synchronous (answered
 * at once, so relayed messages keep their order) or asynchronous (answered when it settles, e.g.
 * after a store write). A failure is answered `{ ok: false, error: { code, message } }` as one line.
 */
import { toFedmartError, type FedmartError } from '@fedmart/shared/errors';
import type { Ack } from '@fedmart/shared/protocol';

/**
 * @param ack - the client's ack callback (anything else: nobody is answered)
 * @param fn - the handler
 * @param onError - sees every failure before it is answered (e.g. to log INTERNAL ones)
 */
export function answerAck(ack: unknown, fn: () => void | Promise<void>, onError: (e: FedmartError) => void = () => undefined): void {
  const reply: (a: Ack) => void = typeof ack === 'function' ? (ack as (a: Ack) => void) : () => undefined;
  const fail = (err: unknown) => {
    const e = toFedmartError(err);
    onError(e);
    reply({ ok: false, error: { code: e.code, message: e.message } });
  };
  try {
    const p = fn();
    if (p) p.then(() => reply({ ok: true }), fail);
    else reply({ ok: true });
  } catch (err) {
    fail(err);
  }
}
