import type { IncomingHttpHeaders } from 'node:http';
import { Agent, type Dispatcher } from 'undici';
import type { CheckOptions } from '../options.ts';
import { normalizeUrl, type UrlSet } from '../urls/index.ts';
import { Probe, type ProbeFailure, type ProbeResult } from './probe.ts';
import { ResultStore, type UrlClass, type UrlOutcome } from './results.ts';
import { HostScheduler } from './scheduler.ts';
import { isTextual, PhraseMatcher } from './text.ts';

export interface CheckProgress {
  checked: number;
  total: number;
}

export interface CheckDeps {
  /** An undici dispatcher to send requests through; by default the run makes its own Agent and destroys it after. */
  dispatcher?: Dispatcher | undefined;
  /** Aborting it stops the run within moments: requests in flight are cut, the promise rejects with the reason. */
  signal?: AbortSignal | undefined;
  /** URLs checked of total, at most every {@link PROGRESS_INTERVAL_MS} and once at the end. */
  onProgress?: ((p: CheckProgress) => void) | undefined;
}

export const PROGRESS_INTERVAL_MS = 250;

/** The undici Agent a run uses: as many connections per origin as requests per host, no pipelining. */
export function createCheckAgent(opts: Pick<CheckOptions, 'perHostConcurrency' | 'timeoutMs'>): Agent {
  return new Agent({
    connections: opts.perHostConcurrency,
    pipelining: 1,
    connectTimeout: opts.timeoutMs,
    headersTimeout: opts.timeoutMs + 1000,
    bodyTimeout: opts.timeoutMs + 1000,
    keepAliveTimeout: 4_000,
  });
}

const FAILURE_CLASS: Record<ProbeFailure, UrlClass> = {
  timeout: 'timeout',
  dns: 'connection_error',
  connection: 'connection_error',
  tls: 'connection_error',
  protocol: 'connection_error',
  cancelled: 'timeout',
};

const withoutWww = (host: string) => (host.startsWith('www.') ? host.slice(4) : host);

function statusClass(status: number): UrlClass {
  if (status >= 400 && status < 500) return 'client_error';
  return 'server_error';
}

/**
 * Checks every URL of the set (see {@link HostScheduler} for the order and the limits) and returns the outcome of
 * each. Per URL: HEAD when no soft-error phrases are configured (GET instead when HEAD is answered with an error
 * status or a broken response, as some servers do), else GET with the first `bodySniffBytes` of a 2xx text page
 * searched for the phrases; redirects followed by hand up to `maxRedirects`, each hop recorded; a request that
 * fails to connect is tried once more after `retryDelayMs`.
 */
export async function checkUrls(set: UrlSet, opts: CheckOptions, deps: CheckDeps = {}): Promise<ResultStore> {
  deps.signal?.throwIfAborted();
  const results = new ResultStore(set.size);

  // Invalid URLs are settled without a request; the rest are grouped by first host (a counting sort).
  const hostCount = set.hostCount;
  const starts = new Int32Array(hostCount + 1);
  for (let u = 0; u < set.size; u++) {
    const h = set.hostIndex(u);
    if (h >= 0) starts[h + 1]!++;
    else results.set(u, invalidOutcome(set.invalidReason(u) ?? 'invalid URL'));
  }
  for (let h = 0; h < hostCount; h++) starts[h + 1]! += starts[h]!;
  const order = new Int32Array(starts[hostCount]!);
  const fill = starts.slice(0, hostCount);
  for (let u = 0; u < set.size; u++) {
    const h = set.hostIndex(u);
    if (h >= 0) order[fill[h]!++] = u;
  }
  const total = set.size;
  const hostNames = Array.from({ length: hostCount }, (_, h) => set.hostName(h));

  const owned = deps.dispatcher ? undefined : createCheckAgent(opts);
  const dispatcher = deps.dispatcher ?? owned!;
  const matcher = new PhraseMatcher(opts.softErrorPhrases);
  const inFlight = new Set<Probe>();
  // One string per origin: undici compares each request's origin with its last one, cheap when it is the same string.
  const origins = new Map<string, string>();
  const internOrigin = (withUserinfo: string) => {
    // Credentials in a URL are not sent (nor kept in the origin undici pools connections by).
    const origin = withUserinfo.includes('@') ? withUserinfo.replace(/\/\/[^/]*@/, '//') : withUserinfo;
    const known = origins.get(origin);
    if (known !== undefined) return known;
    origins.set(origin, origin);
    return origin;
  };
  const headers: Record<string, string> = {
    'user-agent': opts.userAgent,
    accept: 'text/html,*/*;q=0.8',
  };
  let cancelled = false;
  let lastProgress = 0;

  const progress = (force: boolean) => {
    if (!deps.onProgress) return;
    const now = performance.now();
    if (!force && now - lastProgress < PROGRESS_INTERVAL_MS) return;
    lastProgress = now;
    deps.onProgress({ checked: results.done, total });
  };

  const wantBody = (status: number, h: IncomingHttpHeaders) =>
    status >= 200 && status < 300 && isTextual(h['content-type']);

  async function send(href: string, method: 'HEAD' | 'GET'): Promise<ProbeResult> {
    // A normalised http(s) URL: the path starts at the first slash after the authority.
    const slash = href.indexOf('/', href.indexOf('//') + 2);
    const probe = new Probe(dispatcher, {
      origin: internOrigin(href.slice(0, slash)),
      path: href.slice(slash),
      method,
      headers,
      timeoutMs: opts.timeoutMs,
      sniffBytes: matcher.enabled ? opts.bodySniffBytes : 0,
      wantBody,
    });
    inFlight.add(probe);
    const r = await probe.done;
    inFlight.delete(probe);
    return r;
  }

  /** One hop: the request, its one retry, and GET where HEAD is refused. */
  async function request(url: string, tally: { requests: number; retries: number; ms: number }): Promise<ProbeResult> {
    let method: 'HEAD' | 'GET' = matcher.enabled ? 'GET' : 'HEAD';
    let retried = false;
    for (;;) {
      const r = await send(url, method);
      tally.requests++;
      tally.ms += r.ms;
      if (cancelled) return r;
      if (r.retryable && !retried) {
        retried = true;
        tally.retries++;
        if (opts.retryDelayMs) await new Promise((resolve) => setTimeout(resolve, opts.retryDelayMs));
        if (cancelled) return r;
        continue;
      }
      // Servers that refuse HEAD (405, 501), answer it with another error, or break the connection over it.
      const headRefused =
        r.status >= 400 || r.failure === 'protocol' || (r.failure === 'connection' && r.errorCode !== 'ECONNREFUSED');
      if (method === 'HEAD' && headRefused) {
        method = 'GET';
        retried = false;
        continue;
      }
      return r;
    }
  }

  async function checkOne(u: number): Promise<UrlOutcome> {
    const original = set.url(u);
    let url = original;
    let host = set.hostName(set.hostIndex(u));
    const tally = { requests: 0, retries: 0, ms: 0 };
    let chain: string[] | undefined;
    let visited: Set<string> | undefined;
    let redirects = 0;
    const outcome = (cls: UrlClass, status: number, detail: string | undefined, final?: string): UrlOutcome => {
      const finalUrl = final ?? (redirects ? url : undefined);
      return {
        cls,
        status,
        ms: tally.ms,
        redirects,
        chain: chain?.join(' → '),
        finalUrl,
        hostChanged:
          finalUrl !== undefined && withoutWww(new URL(finalUrl).hostname) !== withoutWww(new URL(original).hostname),
        detail,
        requests: tally.requests,
        retries: tally.retries,
      };
    };
    for (;;) {
      let r: ProbeResult;
      try {
        r = await request(url, tally);
      } finally {
        scheduler.release(host);
      }
      if (r.failure) {
        chain?.push(`${r.failure} ${url}`);
        return outcome(FAILURE_CLASS[r.failure], 0, `${r.errorCode}: ${r.errorMessage}`);
      }
      const location = r.headers?.location;
      if (r.status >= 300 && r.status < 400 && location !== undefined) {
        chain ??= [];
        visited ??= new Set([original]);
        chain.push(`${r.status} ${url}`);
        const target = normalizeUrl(
          URL.canParse(String(location), url) ? new URL(String(location), url).href : String(location),
        );
        if (!target.ok) {
          chain.push(`invalid ${String(location)}`);
          return outcome('invalid_url', r.status, `redirect to an invalid URL: ${target.reason}`, String(location));
        }
        if (visited.has(target.url)) {
          chain.push(`loop ${target.url}`);
          return outcome('redirect_loop', r.status, `redirects back to ${target.url}`, target.url);
        }
        if (redirects >= opts.maxRedirects) {
          chain.push(`… ${target.url}`);
          return outcome('redirect_loop', r.status, `more than ${opts.maxRedirects} redirects`, target.url);
        }
        redirects++;
        visited.add(target.url);
        url = target.url;
        host = target.host;
        const wait = scheduler.acquire(host);
        if (wait) await wait;
        if (cancelled) throw new Error('cancelled');
        continue;
      }
      if (chain) chain.push(`${r.status} ${url}`);
      if (r.status >= 200 && r.status < 300) {
        const phrase = r.body ? matcher.find(r.body, r.headers) : undefined;
        if (phrase) return outcome('soft_error', r.status, `page says "${phrase}"`);
        const notes = [
          tally.ms >= opts.slowMs ? `slow (${Math.round(tally.ms)} ms)` : '',
          r.bodyTruncated && r.body === undefined && matcher.enabled ? 'body not read in time' : '',
        ].filter(Boolean);
        return outcome(redirects ? 'redirect' : 'ok', r.status, notes.join('; ') || undefined);
      }
      if (r.status >= 300 && r.status < 400) return outcome('server_error', r.status, `${r.status} without a Location`);
      return outcome(statusClass(r.status), r.status, undefined);
    }
  }

  let scheduler!: HostScheduler;
  let onAbort: (() => void) | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      if (results.done === total) return resolve();
      const fail = (err: unknown) => {
        if (cancelled) return;
        cancelled = true;
        scheduler.stop();
        for (const p of inFlight) p.stop('cancelled');
        reject(err);
      };
      onAbort = () => fail(deps.signal!.reason);
      deps.signal?.addEventListener('abort', onAbort, { once: true });
      scheduler = new HostScheduler(
        { global: opts.globalConcurrency, perHost: opts.perHostConcurrency, delayMs: opts.perHostDelayMs },
        hostNames,
        order,
        starts,
        (u) => {
          checkOne(u).then((o) => {
            if (cancelled) return;
            results.set(u, o);
            scheduler.finish();
            if (results.done === total) {
              progress(true);
              resolve();
            } else progress(false);
          }, fail);
        },
      );
      progress(true);
      scheduler.start();
    });
  } finally {
    if (onAbort) deps.signal?.removeEventListener('abort', onAbort);
    if (owned) await owned.destroy().catch(() => {});
  }
  return results;
}

function invalidOutcome(reason: string): UrlOutcome {
  return {
    cls: 'invalid_url',
    status: 0,
    ms: 0,
    redirects: 0,
    chain: undefined,
    finalUrl: undefined,
    hostChanged: false,
    detail: reason,
    requests: 0,
    retries: 0,
  };
}
