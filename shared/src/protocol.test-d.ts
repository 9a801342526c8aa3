/**
 * Type tests for the wire protocol (checked by `tsc --noEmit` in `npm test`).
 */
import { expectTypeOf } from 'vitest';
import type { ClientEnvelope, ClientMessageType, FederationConfig, ServerToClientEvents, TrainInstruction, Ack } from './protocol.ts';
import type { ErrorCode } from './errors.ts';

// The envelope is a closed union on `type`.
expectTypeOf<ClientMessageType>().toEqualTypeOf<'hello' | 'train-result' | 'train-error' | 'evaluate-result' | 'train-progress'>();
// A train result carries its round and the float count of the binary attachment.
expectTypeOf<Extract<ClientEnvelope, { type: 'train-result' }>['roundId']>().toEqualTypeOf<string>();
expectTypeOf<Extract<ClientEnvelope, { type: 'train-result' }>['payload']['length']>().toEqualTypeOf<number>();
// Tensors go out as binary, never as number[].
expectTypeOf<Parameters<ServerToClientEvents['train']>[1]>().toEqualTypeOf<Uint8Array>();
expectTypeOf<TrainInstruction['config']['proximalMu']>().toEqualTypeOf<number>();
// Parsed configs have their defaults filled in.
expectTypeOf<FederationConfig['minClients']>().toEqualTypeOf<number>();
expectTypeOf<FederationConfig['timeouts']['trainingMs']>().toEqualTypeOf<number>();
// Acks are success or a coded error.
expectTypeOf<Extract<Ack, { ok: false }>['error']['code']>().toEqualTypeOf<string>();
expectTypeOf<'BAD_REQUEST'>().toMatchTypeOf<ErrorCode>();
