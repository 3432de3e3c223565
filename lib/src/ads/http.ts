import type http from 'node:http';
import type https from 'node:https';
import { RetryableError } from '../errors/index.ts';
import { AdsErrorCode } from './types.ts';

/** The body of a response: a byte stream that can also be read whole. */
export interface ResponseBody extends AsyncIterable<Buffer> {
  text(): Promise<string>;
  dump(): Promise<void>;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: ResponseBody;
}

export interface HttpRequest {
  method: 'GET' | 'POST';
  url: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal | undefined;
  /** Deadline for the response headers, and the longest wait for the next body chunk. */
  timeoutMs: number;
}

/**
 * A keep-alive HTTP client for one platform, on node:http (the undici package costs ~30 MB of RSS per process
 * just to load, a fifth of a streaming worker's memory budget). It adds a headers deadline and a stall deadline
 * (armed only while the caller waits for the next chunk, so a slow consumer applying backpressure is never
 * mistaken for a silent server), and turns network failures into RetryableErrors. HTTP statuses are returned,
 * not thrown: what a status means is the platform's business.
 */
export class PlatformHttp {
  readonly platform: string;
  private readonly agentOpts: http.AgentOptions;
  // Created on first use: node:https (TLS) is loaded only by a process that calls an https platform.
  private httpAgent: http.Agent | null = null;
  private httpsAgent: https.Agent | null = null;

  constructor(opts: { platform: string; connections?: number }) {
    this.platform = opts.platform;
    this.agentOpts = { keepAlive: true, maxSockets: opts.connections ?? 16, keepAliveMsecs: 30_000 };
  }

  private client(secure: boolean): { request: typeof http.request; agent: http.Agent } {
    if (secure) {
      const https = process.getBuiltinModule('node:https');
      this.httpsAgent ??= new https.Agent(this.agentOpts);
      return { request: https.request, agent: this.httpsAgent };
    }
    const http = process.getBuiltinModule('node:http');
    this.httpAgent ??= new http.Agent(this.agentOpts);
    return { request: http.request, agent: this.httpAgent };
  }

  send(req: HttpRequest): Promise<HttpResponse> {
    const url = new URL(req.url);
    const secure = url.protocol === 'https:';
    const headers: Record<string, string> = { ...req.headers };
    if (req.body !== undefined) headers['content-length'] = String(Buffer.byteLength(req.body));
    return new Promise<HttpResponse>((resolve, reject) => {
      const fail = (err: unknown): void => reject(networkError(this.platform, err, req.signal));
      let request: http.ClientRequest;
      try {
        const { request: send, agent } = this.client(secure);
        request = send(url, { method: req.method, headers, agent, signal: req.signal });
      } catch (err) {
        fail(err);
        return;
      }
      const headersTimer = setTimeout(() => {
        request.destroy(
          new RetryableError(`${this.platform}: no response within ${req.timeoutMs} ms`, {
            code: AdsErrorCode.Timeout,
          }),
        );
      }, req.timeoutMs);
      request.once('error', (err) => {
        clearTimeout(headersTimer);
        fail(err);
      });
      request.once('response', (res) => {
        clearTimeout(headersTimer);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: wrapBody(this.platform, res, req),
        });
      });
      request.end(req.body);
    });
  }

  async close(): Promise<void> {
    this.httpAgent?.destroy();
    this.httpsAgent?.destroy();
  }
}

function wrapBody(platform: string, res: http.IncomingMessage, req: HttpRequest): ResponseBody {
  const iterate = async function* (): AsyncGenerator<Buffer> {
    const it = res[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    try {
      for (;;) {
        let timer: NodeJS.Timeout | undefined;
        const stalled = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new RetryableError(`${platform}: the response stalled for ${req.timeoutMs} ms`, {
                  code: AdsErrorCode.Timeout,
                }),
              ),
            req.timeoutMs,
          );
        });
        let step: IteratorResult<Buffer>;
        try {
          step = await Promise.race([it.next(), stalled]);
        } finally {
          clearTimeout(timer);
        }
        if (step.done) return;
        yield step.value;
      }
    } catch (err) {
      throw networkError(platform, err, req.signal);
    } finally {
      if (!res.complete) res.destroy();
    }
  };
  return {
    [Symbol.asyncIterator]: iterate,
    async text() {
      const parts: Buffer[] = [];
      for await (const c of iterate()) parts.push(c);
      return Buffer.concat(parts).toString('utf8');
    },
    async dump() {
      try {
        for await (const _ of iterate()) {
        }
      } catch {}
    },
  };
}

/** A failure below HTTP (refused, reset, timed out) as a typed error; the caller's own abort passes through. */
export function networkError(platform: string, err: unknown, signal: AbortSignal | undefined): unknown {
  if (signal?.aborted) {
    const reason: unknown = signal.reason;
    if (reason instanceof Error && reason.name === 'TimeoutError') {
      return new RetryableError(`${platform}: no answer within the call's deadline`, {
        code: AdsErrorCode.Timeout,
        cause: err,
      });
    }
    return reason ?? err;
  }
  if (err instanceof RetryableError) return err;
  const code = (err as { code?: string } | null)?.code ?? '';
  const message = err instanceof Error ? err.message : String(err);
  return new RetryableError(`${platform}: unreachable (${code || message})`, {
    code: AdsErrorCode.Unavailable,
    cause: err,
  });
}

/** Combines the caller's signal with a deadline; the deadline's abort reason is a `TimeoutError`. */
export function withDeadline(signal: AbortSignal | undefined, ms: number): AbortSignal {
  const deadline = AbortSignal.timeout(ms);
  return signal ? AbortSignal.any([signal, deadline]) : deadline;
}

/** `Retry-After` in milliseconds (seconds or an HTTP date), if present and sensible. */
export function retryAfterMs(header: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(header) ? header[0] : header;
  if (!v) return undefined;
  if (/^\d+(\.\d+)?$/.test(v.trim())) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
