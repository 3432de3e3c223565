import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';

/** Why a request gave no usable answer. */
export type ProbeFailure = 'timeout' | 'dns' | 'connection' | 'tls' | 'protocol' | 'cancelled';

export interface ProbeResult {
  /** The final status, or 0 when the request failed. */
  status: number;
  headers: IncomingHttpHeaders | undefined;
  /** The first bytes of the body, when the caller asked for them (see {@link ProbeRequest.sniff}). */
  body: Buffer | undefined;
  /** True when the body was cut short by the sniff limit or the deadline. */
  bodyTruncated: boolean;
  failure: ProbeFailure | undefined;
  /** The error code (`ENOTFOUND`, `ECONNREFUSED`, `UND_ERR_SOCKET`, `HPE_INVALID_CONSTANT`...) and message. */
  errorCode: string | undefined;
  errorMessage: string | undefined;
  /** Worth one more try: the connection failed in a way that is often momentary. */
  retryable: boolean;
  ms: number;
}

export interface ProbeRequest {
  /** `http://host:port`, as undici keys its connection pools. */
  origin: string;
  /** Path and query. */
  path: string;
  method: 'HEAD' | 'GET';
  headers: Record<string, string>;
  timeoutMs: number;
  /** Body bytes to keep when `wantBody` says yes for the response. */
  sniffBytes: number;
  wantBody(status: number, headers: IncomingHttpHeaders): boolean;
}

/** Bodies not kept are read and dropped up to this size, so the connection can be reused; larger ones close it. */
const DRAIN_BYTES = 64 * 1024;

const RETRYABLE = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ECONNABORTED',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);
const DNS = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EAI_FAIL', 'EAI_NONAME', 'EAI_NODATA']);
const TIMEOUT = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

/** The most specific error code: undici wraps socket errors and keeps the OS error as the cause. */
function codeOf(err: unknown): string {
  let code = 'ERROR';
  let e = err as { code?: unknown; cause?: unknown } | undefined;
  for (let depth = 0; e && depth < 4; depth++, e = e.cause as typeof e) {
    if (typeof e.code === 'string') {
      code = e.code;
      if (code !== 'UND_ERR_SOCKET') break;
    }
  }
  return code;
}

function failureOf(code: string): ProbeFailure {
  if (DNS.has(code)) return 'dns';
  if (TIMEOUT.has(code)) return 'timeout';
  if (code.startsWith('HPE_') || code === 'UND_ERR_INFO' || code.startsWith('UND_ERR_RES_')) return 'protocol';
  if (
    code.startsWith('ERR_TLS') ||
    code.startsWith('CERT_') ||
    code.includes('SELF_SIGNED') ||
    code.startsWith('ERR_SSL')
  )
    return 'tls';
  return 'connection';
}

class Stop extends Error {
  override name = 'ProbeStop';
}

/**
 * One HTTP request through undici's dispatch API, with its own deadline: the deadline covers connecting, the
 * headers and the kept part of the body, and fires even while the request waits for a connection (undici only
 * hands out the request's controller once it is written). The answer is final as soon as it is known; a body is
 * read only as far as needed. Never rejects: failures are part of the result.
 */
export class Probe implements Dispatcher.DispatchHandler {
  readonly done: Promise<ProbeResult>;
  private resolveDone!: (r: ProbeResult) => void;
  private readonly req: ProbeRequest;
  private readonly started = performance.now();
  private controller: Dispatcher.DispatchController | null = null;
  private timer: NodeJS.Timeout | undefined;
  private stopReason: ProbeFailure | undefined;
  private settled = false;
  private status = 0;
  private headers: IncomingHttpHeaders | undefined;
  private keep = false;
  private chunks: Buffer[] = [];
  private kept = 0;
  private dropped = 0;
  private truncated = false;

  constructor(dispatcher: Dispatcher, req: ProbeRequest) {
    this.req = req;
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
    this.timer = setTimeout(() => this.stop('timeout'), req.timeoutMs);
    try {
      dispatcher.dispatch(
        {
          origin: req.origin,
          path: req.path,
          method: req.method,
          headers: req.headers,
          headersTimeout: req.timeoutMs + 1000,
          bodyTimeout: req.timeoutMs + 1000,
        },
        this,
      );
    } catch (err) {
      this.fail(err);
    }
  }

  /** Ends the request now; the result says why unless the answer was already complete. */
  stop(reason: ProbeFailure): void {
    if (this.stopReason) return;
    this.stopReason = reason;
    if (this.status && reason === 'timeout') {
      // Headers arrived: the status stands, the body read so far is what there is.
      this.truncated = true;
      this.finish();
    } else {
      this.settle(
        this.failure(
          reason,
          reason === 'timeout' ? 'ETIMEDOUT' : 'CANCELLED',
          `request ${reason === 'timeout' ? `timed out after ${this.req.timeoutMs} ms` : 'cancelled'}`,
          false,
        ),
      );
    }
    this.controller?.abort(new Stop(reason));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.stopReason) controller.abort(new Stop(this.stopReason));
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    if (statusCode < 200) return; // 1xx: informational, the real answer follows
    this.status = statusCode;
    this.headers = headers;
    this.keep = this.req.method === 'GET' && this.req.sniffBytes > 0 && this.req.wantBody(statusCode, headers);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.keep) {
      const room = this.req.sniffBytes - this.kept;
      this.chunks.push(room >= chunk.length ? chunk : chunk.subarray(0, room));
      this.kept += Math.min(room, chunk.length);
      if (this.kept >= this.req.sniffBytes) {
        this.keep = false;
        this.truncated = true;
        this.finish();
        // Keep the connection when the rest is short; a long page is not worth reading to the end.
        const length = Number(this.headers?.['content-length'] ?? Number.NaN);
        if (!(length - this.kept <= DRAIN_BYTES)) controller.abort(new Stop('cancelled'));
      }
      return;
    }
    this.dropped += chunk.length;
    if (this.dropped > DRAIN_BYTES) {
      this.finish();
      controller.abort(new Stop('cancelled'));
    }
  }

  onResponseEnd(): void {
    this.finish();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (err instanceof Stop || this.settled) {
      this.finish();
      return;
    }
    if (this.status) {
      // The body broke off after the headers: the status stands.
      this.truncated = true;
      this.finish();
      return;
    }
    this.fail(err);
  }

  private fail(err: unknown): void {
    const code = codeOf(err);
    const message = err instanceof Error ? err.message : String(err);
    this.settle(this.failure(failureOf(code), code, message, RETRYABLE.has(code)));
  }

  private failure(failure: ProbeFailure, code: string, message: string, retryable: boolean): ProbeResult {
    return {
      status: 0,
      headers: undefined,
      body: undefined,
      bodyTruncated: false,
      failure,
      errorCode: code,
      errorMessage: message,
      retryable,
      ms: performance.now() - this.started,
    };
  }

  private finish(): void {
    if (this.settled) return;
    this.settle({
      status: this.status,
      headers: this.headers,
      body: this.chunks.length ? (this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks)) : undefined,
      bodyTruncated: this.truncated,
      failure: undefined,
      errorCode: undefined,
      errorMessage: undefined,
      retryable: false,
      ms: performance.now() - this.started,
    });
  }

  private settle(r: ProbeResult): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.chunks = [];
    this.resolveDone(r);
  }
}
