import { PermanentError, type PpcError, RetryableError } from '../../errors/index.ts';
import { OutputErrorCode } from '../types.ts';

/**
 * Google API failures (as thrown by googleapis/gaxios) → typed errors, keeping Google's own message.
 *
 * Google answers with `{"error":{"code":403,"message":"...","status":"PERMISSION_DENIED","errors":[{"reason":
 * "insufficientPermissions"}],"details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":...}]}}`.
 * Sheets reports rate limits as 429 RESOURCE_EXHAUSTED; Drive also as 403 with reason `rateLimitExceeded` or
 * `userRateLimitExceeded`, which are retryable unlike every other 403.
 */

interface GoogleErrorBody {
  code?: number;
  message?: string;
  status?: string;
  errors?: Array<{ reason?: string; message?: string }>;
  details?: Array<{ '@type'?: string; reason?: string; retryDelay?: string }>;
}

interface GaxiosLike {
  status?: number;
  code?: string | number;
  name?: string;
  message?: string;
  response?: { status?: number; data?: unknown; headers?: unknown };
}

const RATE_LIMIT_REASONS = new Set(['rateLimitExceeded', 'userRateLimitExceeded', 'RATE_LIMIT_EXCEEDED']);

function header(headers: unknown, name: string): string | undefined {
  if (!headers) return undefined;
  if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? undefined;
  const v = (headers as Record<string, unknown>)[name.toLowerCase()];
  return typeof v === 'string' ? v : undefined;
}

/** Retry-After as seconds or an HTTP date, in milliseconds. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function retryDelayOf(body: GoogleErrorBody | undefined): number | undefined {
  const d = body?.details?.find((x) => x.retryDelay)?.retryDelay;
  const m = d ? /^(\d+(?:\.\d+)?)s$/.exec(d) : null;
  return m ? Math.round(Number(m[1]) * 1000) : undefined;
}

function bodyOf(data: unknown): GoogleErrorBody | undefined {
  if (data && typeof data === 'object' && 'error' in data) {
    const e = (data as { error: unknown }).error;
    if (e && typeof e === 'object') return e as GoogleErrorBody;
  }
  return undefined;
}

/** `what` names the call (`sheets.spreadsheets.values.update`) so an operator knows which step failed. */
export function googleError(err: unknown, what: string): PpcError {
  const e = (err ?? {}) as GaxiosLike;
  const status = e.response?.status ?? e.status;
  if (typeof status !== 'number') {
    const code = String(e.code ?? e.name ?? '');
    const message = `Google ${what}: ${e.message ?? String(err)}`;
    if (/timeout/i.test(code) || /timed? ?out/i.test(e.message ?? '')) {
      return new RetryableError(message, { code: OutputErrorCode.Timeout, cause: err });
    }
    return new RetryableError(message, { code: OutputErrorCode.Unavailable, cause: err });
  }
  const body = bodyOf(e.response?.data);
  const reasons = [...(body?.errors ?? []).map((x) => x.reason), ...(body?.details ?? []).map((x) => x.reason)];
  const said = body?.message ?? e.message ?? 'no message';
  const message = `Google ${what}: ${said} (HTTP ${status}${body?.status ? ` ${body.status}` : ''})`;
  const retryAfterMs = parseRetryAfter(header(e.response?.headers, 'retry-after')) ?? retryDelayOf(body);
  const retryable = (code: string) => new RetryableError(message, { code, retryAfterMs, cause: err });
  const permanent = (code: string) => new PermanentError(message, { code, cause: err });

  if (status === 429) return retryable(OutputErrorCode.Quota);
  if (status === 403) {
    if (reasons.some((r) => r && RATE_LIMIT_REASONS.has(r))) return retryable(OutputErrorCode.Quota);
    if (reasons.includes('storageQuotaExceeded')) return permanent(OutputErrorCode.StorageFull);
    return permanent(OutputErrorCode.Forbidden);
  }
  if (status === 401) return retryable(OutputErrorCode.Unauthenticated);
  if (status === 404) return permanent(OutputErrorCode.NotFound);
  if (status === 408) return retryable(OutputErrorCode.Timeout);
  if (status === 400 && /above the limit of [\d,]+ cells/i.test(said)) return permanent(OutputErrorCode.TooLarge);
  if (status === 409 || status >= 500) return retryable(OutputErrorCode.Unavailable);
  return permanent(OutputErrorCode.Rejected);
}
