/**
 * What a URL turned out to be. The class follows the last answer in the redirect chain:
 * - `ok`: 2xx without redirects, and no soft-error phrase in the page.
 * - `redirect`: 2xx after at least one redirect (the chain and the final URL say where to).
 * - `client_error`: 4xx at the end of the chain (404, 410, 403, 429...).
 * - `server_error`: 5xx, or a 3xx without a usable `Location`, or any other status.
 * - `timeout`: no answer within the timeout (connecting or waiting for headers).
 * - `connection_error`: DNS failure, refused or reset connection, TLS failure, or a broken HTTP answer.
 * - `soft_error`: 2xx whose page says it is not there or not for sale ("Page not found", "Out of stock", ...).
 * - `redirect_loop`: a redirect back to an address already in the chain, or more redirects than allowed.
 * - `invalid_url`: the URL (or a redirect's target) is not an absolute http(s) URL; nothing was requested.
 */
export const URL_CLASSES = [
  'ok',
  'redirect',
  'client_error',
  'server_error',
  'timeout',
  'connection_error',
  'soft_error',
  'redirect_loop',
  'invalid_url',
] as const;
export type UrlClass = (typeof URL_CLASSES)[number];

/** How each class reads in a report. */
export const CLASS_LABELS: Readonly<Record<UrlClass, string>> = {
  ok: 'OK',
  redirect: 'Redirect',
  client_error: 'Client error (4xx)',
  server_error: 'Server error (5xx)',
  timeout: 'Timeout',
  connection_error: 'DNS/connection error',
  soft_error: 'Soft error',
  redirect_loop: 'Redirect loop',
  invalid_url: 'Invalid URL',
};

/** Classes that need fixing (everything but ok and a redirect to a working page). */
export const PROBLEM_CLASSES: ReadonlySet<UrlClass> = new Set(
  URL_CLASSES.filter((c) => c !== 'ok' && c !== 'redirect'),
);

export interface UrlOutcome {
  cls: UrlClass;
  /** The last HTTP status received; 0 when none was. */
  status: number;
  /** Time spent in requests for this URL, every hop included (not time queued for politeness). */
  ms: number;
  /** Redirects followed. */
  redirects: number;
  /** Each request as `<status> <url>`, joined by ` → `; only for URLs that redirected. */
  chain: string | undefined;
  /** Where the chain ended, when it is not the URL itself. */
  finalUrl: string | undefined;
  /** The chain ended on another host (a leading `www.` is not a change). */
  hostChanged: boolean;
  /** The soft-error phrase found, the error code, or another note ("slow", "body cut short"). */
  detail: string | undefined;
  requests: number;
  retries: number;
}

/**
 * Outcomes by URL index, by column: one byte for the class and a few numbers per URL; strings (chain, final URL,
 * detail) only for URLs that have them.
 */
export class ResultStore {
  readonly size: number;
  private readonly cls: Uint8Array;
  private readonly status: Uint16Array;
  private readonly ms: Uint32Array;
  private readonly redirects: Uint8Array;
  private readonly flags: Uint8Array;
  private readonly chains = new Map<number, string>();
  private readonly finals = new Map<number, string>();
  private readonly details = new Map<number, string>();
  private checked = 0;
  readonly byClass: Record<UrlClass, number> = Object.fromEntries(URL_CLASSES.map((c) => [c, 0])) as Record<
    UrlClass,
    number
  >;
  requests = 0;
  retries = 0;

  constructor(size: number) {
    this.size = size;
    this.cls = new Uint8Array(size);
    this.status = new Uint16Array(size);
    this.ms = new Uint32Array(size);
    this.redirects = new Uint8Array(size);
    this.flags = new Uint8Array(size);
  }

  get done(): number {
    return this.checked;
  }

  set(u: number, o: UrlOutcome): void {
    if (this.flags[u]! & 1) throw new Error(`URL ${u} already has a result`);
    this.cls[u] = URL_CLASSES.indexOf(o.cls);
    this.status[u] = o.status;
    this.ms[u] = Math.min(Math.round(o.ms), 0xffffffff);
    this.redirects[u] = Math.min(o.redirects, 255);
    this.flags[u] = 1 | (o.hostChanged ? 2 : 0);
    if (o.chain) this.chains.set(u, o.chain);
    if (o.finalUrl) this.finals.set(u, o.finalUrl);
    if (o.detail) this.details.set(u, o.detail);
    this.byClass[o.cls]++;
    this.requests += o.requests;
    this.retries += o.retries;
    this.checked++;
  }

  has(u: number): boolean {
    return (this.flags[u]! & 1) === 1;
  }

  /** The class's position in {@link URL_CLASSES}. */
  classIndex(u: number): number {
    return this.cls[u]!;
  }

  classOf(u: number): UrlClass {
    return URL_CLASSES[this.cls[u]!]!;
  }

  get(u: number): UrlOutcome | undefined {
    if (!this.has(u)) return undefined;
    return {
      cls: this.classOf(u),
      status: this.status[u]!,
      ms: this.ms[u]!,
      redirects: this.redirects[u]!,
      chain: this.chains.get(u),
      finalUrl: this.finals.get(u),
      hostChanged: (this.flags[u]! & 2) === 2,
      detail: this.details.get(u),
      requests: 0,
      retries: 0,
    };
  }
}
