/**
 * Typed failures. A handler's error class tells the consumer what to do with the message:
 * RetryableError → nak with backoff (or the error's retryAfterMs); PermanentError → term.
 */

export interface ErrorOptions {
  code?: string;
  cause?: unknown;
}

export class PpcError extends Error {
  override name = 'PpcError';
  readonly code: string;
  constructor(message: string, opts: ErrorOptions = {}) {
    super(message, { cause: opts.cause });
    this.code = opts.code ?? 'ERROR';
  }
  get retryable(): boolean {
    return false;
  }
}

/** Worth trying again later: rate limits, unavailability, timeouts. */
export class RetryableError extends PpcError {
  override name = 'RetryableError';
  readonly retryAfterMs: number | undefined;
  constructor(message: string, opts: ErrorOptions & { retryAfterMs?: number } = {}) {
    super(message, { code: 'RETRYABLE', ...opts });
    this.retryAfterMs = opts.retryAfterMs;
  }
  override get retryable(): boolean {
    return true;
  }
}

/** Trying again cannot help: revoked credentials, no access, bad input. */
export class PermanentError extends PpcError {
  override name = 'PermanentError';
  constructor(message: string, opts: ErrorOptions = {}) {
    super(message, { code: 'PERMANENT', ...opts });
  }
}

/** Bad configuration found at start-up; names the variable, the value and what was expected. */
export class ConfigError extends PpcError {
  override name = 'ConfigError';
  readonly variable: string;
  readonly value: string | undefined;
  readonly expected: string;
  constructor(variable: string, value: string | undefined, expected: string) {
    super(`${variable}=${value === undefined ? '(unset)' : JSON.stringify(value)}: expected ${expected}`, {
      code: 'CONFIG',
    });
    this.variable = variable;
    this.value = value;
    this.expected = expected;
  }
}

/** The wire form of an error crossing a thread or process boundary, where classes are lost. */
export interface SerializedError {
  name: string;
  code: string;
  message: string;
  retryable: boolean;
  retryAfterMs?: number;
}

export function serializeError(err: unknown): SerializedError {
  if (err instanceof PpcError) {
    const out: SerializedError = { name: err.name, code: err.code, message: err.message, retryable: err.retryable };
    if (err instanceof RetryableError && err.retryAfterMs !== undefined) out.retryAfterMs = err.retryAfterMs;
    return out;
  }
  if (err instanceof Error) return { name: err.name, code: 'INTERNAL', message: err.message, retryable: true };
  return { name: 'Error', code: 'INTERNAL', message: String(err), retryable: true };
}

/** Rebuilds the typed error on this side of the boundary. */
export function deserializeError(e: SerializedError): PpcError {
  return e.retryable
    ? new RetryableError(e.message, { code: e.code, retryAfterMs: e.retryAfterMs })
    : new PermanentError(e.message, { code: e.code });
}

/** Unknown errors are retried: a bug fixed by a redeploy should not lose the task. */
export function isRetryable(err: unknown): boolean {
  return err instanceof PpcError ? err.retryable : true;
}
