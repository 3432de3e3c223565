import {
  BrokenCircuitError,
  type CircuitBreakerPolicy,
  ConsecutiveBreaker,
  circuitBreaker,
  DelegateBackoff,
  handleWhen,
  type IRetryBackoffContext,
  retry,
} from 'cockatiel';
import { RetryableError } from '../errors/index.ts';
import { AdsErrorCode } from './types.ts';

export interface RetryOptions {
  /** Attempts in total, the first included. */
  maxAttempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
  /**
   * The longest platform-requested wait (retry-after) still waited out in-process. A longer one is returned to
   * the caller as a RetryableError with that `retryAfterMs`, so a worker naks the task instead of holding a slot.
   */
  maxInlineDelayMs: number;
}

export interface BreakerOptions {
  /** Consecutive unavailability failures (5xx, connection errors, timeouts) that open the breaker. */
  threshold: number;
  /** How long the breaker stays open before one trial call is let through. */
  halfOpenAfterMs: number;
}

export const defaultRetry: RetryOptions = {
  maxAttempts: 4,
  initialDelayMs: 250,
  maxDelayMs: 8_000,
  maxInlineDelayMs: 30_000,
};
export const defaultBreaker: BreakerOptions = { threshold: 5, halfOpenAfterMs: 30_000 };

/** Only the platform being down counts against the breaker: not rate limits, not one account's bad credentials. */
function countsAgainstBreaker(err: unknown): boolean {
  return err instanceof RetryableError && (err.code === AdsErrorCode.Unavailable || err.code === AdsErrorCode.Timeout);
}

const breakers = new Map<string, { policy: CircuitBreakerPolicy; opts: BreakerOptions }>();

/**
 * The circuit breaker of one platform endpoint (platform name + API origin), shared by every connector instance
 * in the process: one user's reports failing against a down platform should spare the next user's the wait.
 */
export function breakerFor(key: string, opts: BreakerOptions = defaultBreaker): CircuitBreakerPolicy {
  let entry = breakers.get(key);
  if (!entry) {
    const policy = circuitBreaker(handleWhen(countsAgainstBreaker), {
      halfOpenAfter: opts.halfOpenAfterMs,
      breaker: new ConsecutiveBreaker(opts.threshold),
    });
    entry = { policy, opts };
    breakers.set(key, entry);
  }
  return entry.policy;
}

/** Forgets every breaker; for tests that reuse an endpoint key. */
export function resetBreakers(): void {
  breakers.clear();
}

export interface Resilience {
  /**
   * Runs `fn` through the platform's breaker with retries: RetryableErrors are retried with exponential backoff
   * (full jitter), waiting at least the error's `retryAfterMs`; anything else is thrown at once.
   */
  execute<T>(fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T>;
}

export function createResilience(opts: {
  key: string;
  retry?: Partial<RetryOptions>;
  breaker?: Partial<BreakerOptions>;
}): Resilience {
  const r: RetryOptions = { ...defaultRetry, ...opts.retry };
  const b: BreakerOptions = { ...defaultBreaker, ...opts.breaker };
  const breaker = breakerFor(opts.key, b);
  const retryable = (err: unknown): boolean =>
    err instanceof RetryableError &&
    err.code !== AdsErrorCode.CircuitOpen &&
    (err.retryAfterMs ?? 0) <= r.maxInlineDelayMs;
  const backoff = new DelegateBackoff<IRetryBackoffContext<unknown>>((ctx) => {
    const exp = Math.min(r.maxDelayMs, r.initialDelayMs * 2 ** (ctx.attempt - 1));
    const jittered = exp / 2 + Math.random() * (exp / 2);
    const err = 'error' in ctx.result ? ctx.result.error : undefined;
    const asked = err instanceof RetryableError ? (err.retryAfterMs ?? 0) : 0;
    return Math.max(jittered, asked);
  });
  const policy = retry(handleWhen(retryable), { maxAttempts: r.maxAttempts - 1, backoff });
  return {
    execute<T>(fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
      return policy.execute(async (ctx) => {
        try {
          return await breaker.execute((inner) => fn(inner.signal), ctx.signal);
        } catch (err) {
          if (err instanceof BrokenCircuitError) {
            throw new RetryableError(`${opts.key}: circuit open after repeated failures; not calling the platform`, {
              code: AdsErrorCode.CircuitOpen,
              retryAfterMs: b.halfOpenAfterMs,
              cause: err,
            });
          }
          throw err;
        }
      }, signal);
    },
  };
}
