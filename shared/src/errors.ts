/**
 * One error type for all of fedmart, with a closed set of codes and one
 * code → HTTP status table (the shape of tRPC's TRPCError + codes table).
 *
 * A message always says what was expected, what arrived, and what to do.
 * Unknown throwables are normalised with {@link toFedmartError} only at the
 * transport edge (REST handler, socket handler, CLI main).
 */

/** Every error code fedmart can report. */
export const ERROR_CODES = [
  'BAD_REQUEST',
  'INVALID_MESSAGE',
  'INVALID_UPDATE',
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'NOT_FOUND',
  'CONFLICT',
  'PAYLOAD_TOO_LARGE',
  'UNPROCESSABLE',
  'PROTOCOL_MISMATCH',
  'ROUND_FAILED',
  'BUDGET_EXCEEDED',
  'DATA_ERROR',
  'CONFIG_ERROR',
  'CRYPTO_ERROR',
  'UNAVAILABLE',
  'INTERNAL',
] as const;

/** A fedmart error code. */
export type ErrorCode = (typeof ERROR_CODES)[number];

/** HTTP status for each code. */
export const HTTP_STATUS: Readonly<Record<ErrorCode, number>> = {
  BAD_REQUEST: 400,
  INVALID_MESSAGE: 400,
  INVALID_UPDATE: 422,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNPROCESSABLE: 422,
  PROTOCOL_MISMATCH: 400,
  ROUND_FAILED: 409,
  BUDGET_EXCEEDED: 409,
  DATA_ERROR: 422,
  CONFIG_ERROR: 400,
  CRYPTO_ERROR: 400,
  UNAVAILABLE: 503,
  INTERNAL: 500,
};

/** The JSON body of every error response and error event. */
export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: unknown };
}

/**
 * The error fedmart throws and sends.
 *
 * @example
 * throw new FedmartError('DATA_ERROR', 'column "y" not found in bank.csv; pass --label with one of: age, job, …');
 */
export class FedmartError extends Error {
  override readonly name = 'FedmartError';
  readonly code: ErrorCode;
  readonly details?: unknown;

  /**
   * @param code - closed error code, mapped to an HTTP status by {@link HTTP_STATUS}
   * @param message - what was expected, what arrived, what to do
   * @param options - `cause` keeps the original error; `details` is sent to the caller
   */
  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    if (options.details !== undefined) this.details = options.details;
  }

  /** HTTP status for this error's code. */
  get status(): number {
    return HTTP_STATUS[this.code];
  }

  /** The wire form: `{ error: { code, message } }`. */
  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, ...(this.details === undefined ? {} : { details: this.details }) } };
  }
}

/**
 * Normalise anything thrown into a FedmartError (use at transport edges only).
 * @param err - any thrown value
 * @returns the same error if it is a FedmartError, else an INTERNAL one keeping `cause`
 */
export function toFedmartError(err: unknown): FedmartError {
  if (err instanceof FedmartError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new FedmartError('INTERNAL', `internal error: ${message}`, { cause: err });
}

/** True if `x` is a FedmartError with the given code (or any code when omitted). */
export function isFedmartError(x: unknown, code?: ErrorCode): x is FedmartError {
  return x instanceof FedmartError && (code === undefined || x.code === code);
}
