import { setTimeout as sleep } from 'node:timers/promises';
// The two API surfaces only: `import 'googleapis'` loads every Google API (120+ MB of RSS); these two cost ~26 MB.
import { drive_v3 } from 'googleapis/build/src/apis/drive/v3.js';
import { sheets_v4 } from 'googleapis/build/src/apis/sheets/v4.js';
import { RetryableError } from '../../errors/index.ts';
import type { GoogleOutputDeps, RetryPolicy } from '../types.ts';
import { googleError } from './errors.ts';

export const defaultRetryPolicy: RetryPolicy = {
  maxAttempts: 6,
  initialDelayMs: 1_000,
  // Google's advice for Sheets and Drive: truncated exponential backoff up to 32-64 s.
  maxDelayMs: 32_000,
  // A per-minute quota frees up within a minute.
  maxInlineDelayMs: 60_000,
};

/** What googleapis methods take as their second argument (gaxios options). */
export interface CallOptions {
  headers: Record<string, string>;
  signal: AbortSignal;
  timeout: number;
  retry: false;
}

/**
 * Sheets v4 and Drive v3 through googleapis, one request at a time, each with a fresh token from the caller's
 * provider, the output's abort signal and a timeout; gaxios' own retries are off, retries happen in `retrying`.
 */
export class GoogleClient {
  readonly sheets: sheets_v4.Sheets;
  readonly drive: drive_v3.Drive;
  private readonly deps: GoogleOutputDeps;
  private readonly policy: RetryPolicy;
  private readonly signal: AbortSignal;
  private readonly onRequest: () => void;

  constructor(deps: GoogleOutputDeps, policy: Partial<RetryPolicy>, signal: AbortSignal, onRequest: () => void) {
    const common = { retry: false, ...(deps.rootUrl ? { rootUrl: deps.rootUrl } : {}) };
    this.sheets = new sheets_v4.Sheets(common);
    this.drive = new drive_v3.Drive(common);
    this.deps = deps;
    this.policy = { ...defaultRetryPolicy, ...policy };
    this.signal = signal;
    this.onRequest = onRequest;
  }

  /** One request; its failure mapped to a typed error (or the abort reason). */
  async once<T>(what: string, fn: (o: CallOptions) => Promise<{ data: T }>): Promise<T> {
    this.signal.throwIfAborted();
    const token = await this.deps.accessToken();
    this.signal.throwIfAborted();
    this.onRequest();
    try {
      const res = await fn({
        headers: { Authorization: `Bearer ${token}` },
        signal: this.signal,
        timeout: this.deps.timeoutMs ?? 60_000,
        retry: false,
      });
      return res.data;
    } catch (err) {
      if (this.signal.aborted) throw this.signal.reason;
      throw googleError(err, what);
    }
  }

  /**
   * Runs `attempt` until it succeeds, retrying RetryableErrors with exponential backoff (full jitter, at least the
   * error's Retry-After). A Retry-After beyond `maxInlineDelayMs`, or the last failure, is thrown to the caller.
   * The waits end at once on abort, which cockatiel 4's retry delay would not.
   */
  async retrying<T>(attempt: (n: number) => Promise<T>): Promise<T> {
    const p = this.policy;
    for (let n = 1; ; n++) {
      try {
        return await attempt(n);
      } catch (err) {
        const asked = err instanceof RetryableError ? (err.retryAfterMs ?? 0) : 0;
        if (!(err instanceof RetryableError) || n >= p.maxAttempts || asked > p.maxInlineDelayMs) throw err;
        const exp = Math.min(p.maxDelayMs, p.initialDelayMs * 2 ** (n - 1));
        await sleep(Math.max(asked, exp / 2 + Math.random() * (exp / 2)), undefined, { signal: this.signal }).catch(
          () => {
            throw this.signal.reason;
          },
        );
      }
    }
  }

  /** `once` with retries: for requests that are safe to repeat. */
  call<T>(what: string, fn: (o: CallOptions) => Promise<{ data: T }>): Promise<T> {
    return this.retrying(() => this.once(what, fn));
  }
}
