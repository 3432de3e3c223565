import { PermanentError, type PpcError, RetryableError } from '../../errors/index.ts';
import { retryAfterMs } from '../http.ts';
import { AdsErrorCode } from '../types.ts';

/**
 * Google Ads error payloads → typed errors. The REST API answers failures with a google.rpc.Status:
 * `{"error":{"code":403,"message":"...","status":"PERMISSION_DENIED","details":[{"@type":
 * "type.googleapis.com/google.ads.googleads.vNN.errors.GoogleAdsFailure","errors":[{"errorCode":
 * {"authorizationError":"USER_PERMISSION_DENIED"},"message":"...","details":{"quotaErrorDetails":
 * {"retryDelay":"30s"}}}],"requestId":"..."}]}}`; searchStream may wrap it in an array, or send it as an element
 * after some result chunks. Mapping (by status first, then HTTP code): UNAUTHENTICATED → ADS_AUTH,
 * PERMISSION_DENIED → ADS_NO_ACCESS, INVALID_ARGUMENT/FAILED_PRECONDITION/OUT_OF_RANGE → ADS_BAD_QUERY,
 * NOT_FOUND → ADS_NOT_FOUND (all permanent); RESOURCE_EXHAUSTED → ADS_RATE_LIMITED (retryable, honouring
 * QuotaErrorDetails.retryDelay, google.rpc.RetryInfo or Retry-After); INTERNAL/UNAVAILABLE/DEADLINE_EXCEEDED/
 * UNKNOWN/ABORTED → ADS_UNAVAILABLE (retryable).
 */

export interface GoogleAdsErrorEntry {
  errorCode?: Record<string, string>;
  message?: string;
  details?: { quotaErrorDetails?: { retryDelay?: string; rateScope?: string; rateName?: string } };
}

export interface GoogleRpcStatus {
  code?: number;
  message?: string;
  status?: string;
  details?: Array<{ '@type'?: string; errors?: GoogleAdsErrorEntry[]; requestId?: string; retryDelay?: string }>;
}

/** Platform failure details kept as the typed error's `cause`. */
export class GoogleAdsFailure extends Error {
  override name = 'GoogleAdsFailure';
  readonly httpStatus: number;
  readonly status: string;
  readonly errors: GoogleAdsErrorEntry[];
  readonly requestId: string | undefined;
  constructor(message: string, httpStatus: number, rpc: GoogleRpcStatus) {
    super(message);
    this.httpStatus = httpStatus;
    this.status = rpc.status ?? '';
    this.errors = (rpc.details ?? []).flatMap((d) => d.errors ?? []);
    this.requestId = (rpc.details ?? []).find((d) => d.requestId)?.requestId;
  }
}

/** A protobuf Duration in JSON ("30s", "1.5s") in milliseconds. */
export function durationMs(d: string | undefined): number | undefined {
  const m = d ? /^(\d+(?:\.\d+)?)s$/.exec(d.trim()) : null;
  return m ? Math.round(Number(m[1]) * 1000) : undefined;
}

/** google.rpc.Code numbers, as found in a Status embedded in a response (`partialFailureError.code`). */
const STATUS_BY_GRPC: Record<number, string> = {
  1: 'CANCELLED',
  2: 'UNKNOWN',
  3: 'INVALID_ARGUMENT',
  4: 'DEADLINE_EXCEEDED',
  5: 'NOT_FOUND',
  7: 'PERMISSION_DENIED',
  8: 'RESOURCE_EXHAUSTED',
  9: 'FAILED_PRECONDITION',
  10: 'ABORTED',
  11: 'OUT_OF_RANGE',
  12: 'UNIMPLEMENTED',
  13: 'INTERNAL',
  14: 'UNAVAILABLE',
  16: 'UNAUTHENTICATED',
};

/** An embedded Status (gRPC code, no HTTP around it), such as `partialFailureError`, mapped like an error response. */
export function mapEmbeddedStatus(platform: string, rpc: GoogleRpcStatus): PpcError {
  const status = rpc.status ?? (rpc.code !== undefined ? STATUS_BY_GRPC[rpc.code] : undefined);
  return mapGoogleAdsError(platform, 200, { ...rpc, status: status ?? 'UNKNOWN' });
}

const STATUS_BY_HTTP: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  501: 'UNIMPLEMENTED',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
};

/** Maps a google.rpc.Status (and the HTTP response around it) to a RetryableError or PermanentError. */
export function mapGoogleAdsError(
  platform: string,
  httpStatus: number,
  rpc: GoogleRpcStatus | undefined,
  headers: Record<string, string | string[] | undefined> = {},
): PpcError {
  const r: GoogleRpcStatus = rpc ?? {};
  const status = r.status ?? STATUS_BY_HTTP[httpStatus] ?? (httpStatus >= 500 ? 'INTERNAL' : 'UNKNOWN');
  const failure = new GoogleAdsFailure(r.message ?? `HTTP ${httpStatus}`, httpStatus, r);
  const codes = failure.errors
    .map((e) => Object.entries(e.errorCode ?? {}).map(([k, v]) => `${k}.${v}`)[0])
    .filter((x): x is string => !!x);
  const messages = failure.errors.map((e) => e.message).filter((x): x is string => !!x);
  const detail = messages.length ? messages.join('; ') : (r.message ?? `HTTP ${httpStatus}`);
  const message = `${platform}: ${status}${codes.length ? ` (${codes.join(', ')})` : ''}: ${detail}${failure.requestId ? ` [request ${failure.requestId}]` : ''}`;
  const cause = failure;
  switch (status) {
    case 'UNAUTHENTICATED':
      return new PermanentError(message, { code: AdsErrorCode.Auth, cause });
    case 'PERMISSION_DENIED':
      return new PermanentError(message, { code: AdsErrorCode.NoAccess, cause });
    case 'INVALID_ARGUMENT':
    case 'FAILED_PRECONDITION':
    case 'OUT_OF_RANGE':
      return new PermanentError(message, { code: AdsErrorCode.BadQuery, cause });
    case 'NOT_FOUND':
      return new PermanentError(message, { code: AdsErrorCode.NotFound, cause });
    case 'RESOURCE_EXHAUSTED': {
      const delays = [
        ...failure.errors.map((e) => durationMs(e.details?.quotaErrorDetails?.retryDelay)),
        ...(r.details ?? []).map((d) => durationMs(d.retryDelay)),
        retryAfterMs(headers['retry-after']),
      ].filter((x): x is number => x !== undefined);
      return new RetryableError(message, {
        code: AdsErrorCode.RateLimited,
        retryAfterMs: delays.length ? Math.max(...delays) : undefined,
        cause,
      });
    }
    case 'INTERNAL':
    case 'UNAVAILABLE':
    case 'DEADLINE_EXCEEDED':
    case 'UNKNOWN':
    case 'ABORTED':
      return new RetryableError(message, {
        code: AdsErrorCode.Unavailable,
        retryAfterMs: retryAfterMs(headers['retry-after']),
        cause,
      });
    default:
      return httpStatus >= 500
        ? new RetryableError(message, { code: AdsErrorCode.Unavailable, cause })
        : new PermanentError(message, { code: AdsErrorCode.Rejected, cause });
  }
}

/** Reads an error body (a Status object, or one wrapped in an array as searchStream does) and maps it. */
export function errorFromBody(
  platform: string,
  httpStatus: number,
  text: string,
  headers: Record<string, string | string[] | undefined> = {},
): PpcError {
  let rpc: GoogleRpcStatus | undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    const first = Array.isArray(parsed) ? parsed.find((e) => e && typeof e === 'object' && 'error' in e) : parsed;
    if (first && typeof first === 'object' && 'error' in first) rpc = (first as { error: GoogleRpcStatus }).error;
  } catch {
    rpc = { message: text.slice(0, 500) || `HTTP ${httpStatus}` };
  }
  return mapGoogleAdsError(platform, httpStatus, rpc, headers);
}
