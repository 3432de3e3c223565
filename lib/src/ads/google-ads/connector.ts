import type { OAuth2Client } from 'google-auth-library';
import { PermanentError, type PpcError, RetryableError } from '../../errors/index.ts';
import { type HttpResponse, PlatformHttp, withDeadline } from '../http.ts';
import { type BreakerOptions, createResilience, type RetryOptions } from '../resilience.ts';
import { schemaFor, toGaql } from '../schema.ts';
import {
  type AccountRef,
  type AccountStatus,
  type AdAccount,
  AdsErrorCode,
  type AdPlatformConnector,
  type CallOptions,
  type CellValue,
  type ReportQuery,
  type RowBatch,
  type UrlSource,
  type UrlUsage,
} from '../types.ts';
import { errorFromBody, type GoogleRpcStatus, mapEmbeddedStatus, mapGoogleAdsError } from './errors.ts';
import { RowDecoder } from './row-template.ts';
import { JsonStreamError, SearchStreamParser } from './stream-parser.ts';

/**
 * URL usages from rows laid out as campaign id, campaign name, ad group id, ad group name, entity id,
 * label, final URLs: the ad and keyword queries of `listUrls`.
 */
function adGroupUrlUses(rows: RowBatch['rows'], source: UrlSource, defaultLabel: string): UrlUsage[] {
  return rows.flatMap((r) =>
    (r[6] as string[]).map((url) => ({
      url,
      source,
      campaignId: String(r[0]),
      campaignName: String(r[1]),
      adGroupId: String(r[2]),
      adGroupName: String(r[3]),
      entityId: String(r[4]),
      label: String(r[5] ?? defaultLabel),
    })),
  );
}

/**
 * The Google Ads API over REST (https://developers.google.com/google-ads/api/rest/overview): GAQL through
 * `customers/{id}/googleAds:searchStream`, accounts through `customers:listAccessibleCustomers` and the
 * `customer_client` hierarchy, OAuth2 refresh-token flow through googleapis' auth client (`google.auth.OAuth2`,
 * which is google-auth-library's OAuth2Client; imported from there directly because loading `googleapis` pulls
 * every Google API's surface into memory, 120+ MB).
 */
export interface GoogleAdsConfig {
  developerToken: string;
  /** OAuth client and refresh token: the connector refreshes access tokens itself. Omit them when `accessToken` is given. */
  clientId?: string;
  clientSecret?: string;
  refreshToken?: string;
  /**
   * Where access tokens come from instead of the refresh-token flow (a worker gets them from the credential broker
   * and never holds a refresh token). Called before each API call (`force: false`; the provider caches) and once
   * more with `force: true` after the API answered 401. Concurrent callers share one pending call. Errors it
   * throws reach the caller unchanged when they are `PermanentError`/`RetryableError`.
   */
  accessToken?: AccessTokenProvider;
  /** Default `login-customer-id` for accounts reached without one. */
  loginCustomerId?: string;
  /** API version path segment; default `v21`. */
  apiVersion?: string;
  /** Default `https://googleads.googleapis.com`. */
  baseUrl?: string;
  /** OAuth2 token endpoint; default Google's. */
  tokenUrl?: string;
  /** Default per-call timeout (see CallOptions.timeoutMs); default 60 s. */
  timeoutMs?: number;
  retry?: Partial<RetryOptions>;
  breaker?: Partial<BreakerOptions>;
  /** Name in errors and the breaker key; default `google-ads`. */
  platform?: string;
  /** Rows per RowBatch handed to the caller (and the most rows held at once); default 1,000. */
  batchRows?: number;
  /** Rows a platform accepted only in part (a `partialFailureError` in a response) are reported here. */
  onPartialFailure?: (err: PpcError) => void;
}

/** Supplies a valid OAuth access token; `force` asks for a new one because the API refused the last. */
export type AccessTokenProvider = (opts: { force: boolean }) => Promise<string>;

interface StreamChunk {
  results?: unknown[];
  fieldMask?: string;
  requestId?: string;
  error?: GoogleRpcStatus;
  partialFailureError?: GoogleRpcStatus;
}

const ACCOUNT_FIELDS = [
  'customer_client.client_customer',
  'customer_client.id',
  'customer_client.level',
  'customer_client.manager',
  'customer_client.descriptive_name',
  'customer_client.currency_code',
  'customer_client.time_zone',
  'customer_client.status',
];

const STATUSES = new Set<AccountStatus>(['ENABLED', 'CANCELED', 'SUSPENDED', 'CLOSED']);

export function normalizeCustomerId(id: string): string {
  const digits = id
    .replace(/^customers\//, '')
    .replace(/-/g, '')
    .trim();
  if (!/^\d{1,20}$/.test(digits))
    throw new PermanentError(`not a Google Ads customer id: ${JSON.stringify(id)}`, { code: AdsErrorCode.BadQuery });
  return digits;
}

export class GoogleAdsConnector implements AdPlatformConnector {
  readonly platform: string;
  private readonly cfg: GoogleAdsConfig;
  private readonly http: PlatformHttp;
  /** Loaded on the first token request: google-auth-library costs ~20 MB of RSS to load, so processes that only
   * import the ads module (the demo server, services that never stream) do not pay for it. */
  private oauth: Promise<OAuth2Client> | null = null;
  private readonly resilience;
  private readonly base: string;
  private readonly timeoutMs: number;
  private tokenInFlight: Promise<string> | null = null;

  constructor(cfg: GoogleAdsConfig) {
    if (!cfg.accessToken) {
      const missing = (['clientId', 'clientSecret', 'refreshToken'] as const).filter((k) => !cfg[k]);
      if (missing.length) {
        throw new TypeError(`GoogleAdsConfig: ${missing.join(', ')} required unless an accessToken provider is given`);
      }
    }
    this.cfg = cfg;
    this.platform = cfg.platform ?? 'google-ads';
    const baseUrl = (cfg.baseUrl ?? 'https://googleads.googleapis.com').replace(/\/$/, '');
    this.base = `${baseUrl}/${cfg.apiVersion ?? 'v21'}`;
    this.timeoutMs = cfg.timeoutMs ?? 60_000;
    this.http = new PlatformHttp({ platform: this.platform });
    this.resilience = createResilience({ key: `${this.platform}|${baseUrl}`, retry: cfg.retry, breaker: cfg.breaker });
  }

  private oauthClient(): Promise<OAuth2Client> {
    this.oauth ??= import('google-auth-library').then(
      ({ OAuth2Client }) => {
        const client = new OAuth2Client({
          clientId: this.cfg.clientId,
          clientSecret: this.cfg.clientSecret,
          ...(this.cfg.tokenUrl ? { endpoints: { oauth2TokenUrl: this.cfg.tokenUrl } } : {}),
        });
        client.setCredentials({ refresh_token: this.cfg.refreshToken });
        return client;
      },
      (err: unknown) => {
        this.oauth = null;
        throw err;
      },
    );
    return this.oauth;
  }

  /**
   * A valid access token, refreshed when expired (or when `force`, after the API said 401). Single-flight: every
   * concurrent caller shares one refresh, so a provider that rotates refresh tokens never sees two race.
   */
  private accessToken(force = false): Promise<string> {
    if (this.tokenInFlight) return this.tokenInFlight;
    const provider = this.cfg.accessToken;
    const token: Promise<string | null | undefined> = provider
      ? Promise.resolve().then(() => provider({ force }))
      : this.oauthClient().then(async (oauth) => {
          if (force) oauth.setCredentials({ refresh_token: this.cfg.refreshToken });
          return (await oauth.getAccessToken()).token;
        });
    const p = token
      .then((t) => {
        if (!t)
          throw new PermanentError(
            `${this.platform}: the ${provider ? 'access-token provider' : 'token endpoint'} returned no access token`,
            {
              code: AdsErrorCode.Auth,
            },
          );
        return t;
      })
      .catch((err: unknown) => {
        throw this.tokenError(err);
      })
      .finally(() => {
        this.tokenInFlight = null;
      });
    this.tokenInFlight = p;
    return p;
  }

  private tokenError(err: unknown): PpcError {
    if (err instanceof PermanentError || err instanceof RetryableError) return err;
    const res = (err as { response?: { status?: number; data?: { error?: string; error_description?: string } } })
      .response;
    const status = res?.status;
    const what = res?.data?.error
      ? `${res.data.error}${res.data.error_description ? `: ${res.data.error_description}` : ''}`
      : (err as Error).message;
    if (status !== undefined && status >= 400 && status < 500 && status !== 429) {
      return new PermanentError(`${this.platform}: OAuth token refresh refused (${what}); reconnect the account`, {
        code: AdsErrorCode.Auth,
        cause: err,
      });
    }
    return new RetryableError(`${this.platform}: OAuth token endpoint unavailable (${what})`, {
      code: AdsErrorCode.Unavailable,
      cause: err,
    });
  }

  private headers(token: string, login: string | undefined): Record<string, string> {
    const h: Record<string, string> = {
      authorization: `Bearer ${token}`,
      'developer-token': this.cfg.developerToken,
      'content-type': 'application/json',
      accept: 'application/json',
    };
    const l = login ?? this.cfg.loginCustomerId;
    if (l) h['login-customer-id'] = normalizeCustomerId(l);
    return h;
  }

  /** One API call through breaker and retries; a 401 gets one forced token refresh before it counts. */
  private async call(
    method: 'GET' | 'POST',
    path: string,
    body: string | undefined,
    login: string | undefined,
    opts: CallOptions,
    stream: boolean,
  ): Promise<HttpResponse> {
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    return this.resilience.execute(async (signal) => {
      const send = async (token: string): Promise<HttpResponse> =>
        this.http.send({
          method,
          url: `${this.base}${path}`,
          headers: this.headers(token, login),
          body,
          signal: stream ? signal : withDeadline(signal, timeoutMs),
          timeoutMs,
        });
      let res = await send(await this.accessToken());
      if (res.status === 401) {
        await res.body.dump();
        res = await send(await this.accessToken(true));
      }
      if (res.status >= 200 && res.status < 300) return res;
      const text = await res.body.text().catch(() => '');
      throw errorFromBody(this.platform, res.status, text, res.headers);
    }, opts.signal);
  }

  /**
   * Raw searchStream: GoogleAdsRow objects in batches of up to `batchRows`, parsed incrementally as bytes arrive.
   * An error element inside the stream is thrown after the rows before it have been delivered.
   */
  searchStreamRows(account: AccountRef, gaql: string, opts: CallOptions = {}): AsyncGenerator<unknown[]> {
    return this.searchStreamBatches<unknown>(account, gaql, opts, (row) => row);
  }

  /**
   * searchStream rows in batches, each row made into an item by `item`, or, when `decoder` is given, decoded by it
   * straight from the text when it can (see RowDecoder), with `item` for the rest.
   */
  private async *searchStreamBatches<T>(
    account: AccountRef,
    gaql: string,
    opts: CallOptions,
    item: (row: unknown) => T,
    decoder?: RowDecoder,
  ): AsyncGenerator<T[]> {
    const id = normalizeCustomerId(account.id);
    const batchRows = this.cfg.batchRows ?? 1000;
    const res = await this.call(
      'POST',
      `/customers/${id}/googleAds:searchStream`,
      JSON.stringify({ query: gaql }),
      account.loginCustomerId,
      opts,
      true,
    );
    let batch: T[] = [];
    let failure: PpcError | undefined;
    const parser = new SearchStreamParser({
      onRow: (row) => batch.push(item(row)),
      ...(decoder && {
        decoder: {
          match: (text: string, pos: number) => decoder.match(text, pos, batch as CellValue[][]),
          learn: (rowText: string) => decoder.learn(rowText),
        },
      }),
      onChunk: (chunk) => {
        const c = chunk as StreamChunk;
        if (c.error && !failure) failure = mapGoogleAdsError(this.platform, c.error.code ?? 500, c.error);
        if (c.partialFailureError) {
          this.cfg.onPartialFailure?.(mapEmbeddedStatus(this.platform, c.partialFailureError));
        }
      },
    });
    const parse = (fn: () => void): void => {
      try {
        fn();
      } catch (err) {
        if (!(err instanceof JsonStreamError)) throw err;
        throw new RetryableError(`${this.platform}: ${err.message}`, { code: AdsErrorCode.Unavailable, cause: err });
      }
    };
    for await (const buf of res.body) {
      parse(() => parser.push(buf));
      while (batch.length >= batchRows) {
        const full = batch.length === batchRows ? batch : batch.slice(0, batchRows);
        batch = batch.length === batchRows ? [] : batch.slice(batchRows);
        yield full;
      }
      if (failure) break;
    }
    if (!failure) parse(() => parser.end());
    if (batch.length) yield batch;
    if (failure) throw failure;
  }

  async *streamReport(account: AccountRef, query: ReportQuery, opts: CallOptions = {}): AsyncGenerator<RowBatch> {
    const schema = schemaFor(query);
    const decoder = new RowDecoder(schema);
    const cells = (row: unknown): CellValue[] => decoder.cellsOf(row);
    for await (const rows of this.searchStreamBatches(account, toGaql(query), opts, cells, decoder)) {
      yield { schema, rows };
    }
  }

  async listAccounts(opts: CallOptions = {}): Promise<AdAccount[]> {
    const res = await this.call('GET', '/customers:listAccessibleCustomers', undefined, undefined, opts, false);
    const text = await res.body.text();
    const roots = ((JSON.parse(text) as { resourceNames?: string[] }).resourceNames ?? []).map(normalizeCustomerId);
    const out = new Map<string, AdAccount>();
    const queried = new Set<string>();
    let lastError: unknown;
    for (const root of roots) {
      // Breadth first, one level at a time, as Google's account-hierarchy example does: parents are known that way.
      const queue: Array<{ id: string; parentId: string | null; level: number }> = [
        { id: root, parentId: null, level: 0 },
      ];
      while (queue.length) {
        const { id, parentId, level } = queue.shift()!;
        if (queried.has(id)) continue;
        queried.add(id);
        const rows: AdAccount[] = [];
        try {
          for await (const batch of this.streamReport(
            { id, loginCustomerId: root },
            { from: 'customer_client', select: ACCOUNT_FIELDS, where: ['customer_client.level <= 1'] },
            opts,
          )) {
            for (const r of batch.rows) {
              const status = String(r[7] ?? 'UNKNOWN') as AccountStatus;
              rows.push({
                id: String(r[1]),
                loginCustomerId: root === String(r[1]) ? undefined : root,
                name: String(r[4] ?? ''),
                currency: String(r[5] ?? ''),
                timeZone: String(r[6] ?? ''),
                status: STATUSES.has(status) ? status : 'UNKNOWN',
                manager: r[3] === true,
                parentId: Number(r[2]) === 0 ? parentId : id,
                level: level + Number(r[2]),
              });
            }
          }
        } catch (err) {
          // A root that cannot be read (closed, access removed) does not hide the others.
          if (!(err instanceof PermanentError) || level > 0) throw err;
          lastError = err;
          continue;
        }
        for (const a of rows) {
          if (out.has(a.id)) continue;
          out.set(a.id, a);
          if (a.manager && a.id !== id) queue.push({ id: a.id, parentId: id, level: a.level });
        }
      }
    }
    if (out.size === 0 && lastError) throw lastError;
    return [...out.values()];
  }

  async *listUrls(account: AccountRef, opts: CallOptions = {}): AsyncGenerator<UrlUsage[]> {
    const ads: ReportQuery = {
      from: 'ad_group_ad',
      select: [
        'campaign.id',
        'campaign.name',
        'ad_group.id',
        'ad_group.name',
        'ad_group_ad.ad.id',
        'ad_group_ad.ad.type',
        'ad_group_ad.ad.final_urls',
      ],
      where: ["ad_group_ad.status != 'REMOVED'"],
    };
    for await (const b of this.streamReport(account, ads, opts)) {
      yield adGroupUrlUses(b.rows, 'ad', 'AD');
    }
    const keywords: ReportQuery = {
      from: 'ad_group_criterion',
      select: [
        'campaign.id',
        'campaign.name',
        'ad_group.id',
        'ad_group.name',
        'ad_group_criterion.criterion_id',
        'ad_group_criterion.keyword.text',
        'ad_group_criterion.final_urls',
      ],
      where: ["ad_group_criterion.type = 'KEYWORD'", "ad_group_criterion.status != 'REMOVED'"],
    };
    for await (const b of this.streamReport(account, keywords, opts)) {
      const batch = adGroupUrlUses(b.rows, 'keyword', '');
      if (batch.length) yield batch;
    }
    const sitelinks: ReportQuery = {
      from: 'campaign_asset',
      select: ['campaign.id', 'campaign.name', 'asset.id', 'asset.sitelink_asset.link_text', 'asset.final_urls'],
      where: ["campaign_asset.field_type = 'SITELINK'"],
    };
    for await (const b of this.streamReport(account, sitelinks, opts)) {
      yield b.rows.flatMap((r) =>
        (r[4] as string[]).map((url) => ({
          url,
          source: 'sitelink' as const,
          campaignId: String(r[0]),
          campaignName: String(r[1]),
          entityId: String(r[2]),
          label: String(r[3] ?? ''),
        })),
      );
    }
  }

  async close(): Promise<void> {
    await this.http.close();
  }
}

export function createGoogleAdsConnector(cfg: GoogleAdsConfig): GoogleAdsConnector {
  return new GoogleAdsConnector(cfg);
}
