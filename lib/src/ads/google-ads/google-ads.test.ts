/**
 * The Google Ads connector against a local HTTP server that is a STAND-IN FOR THE REAL GOOGLE ADS API: it answers
 * with the documented REST shapes (searchStream as a streamed JSON array of result chunks with int64 as strings,
 * google.rpc.Status errors carrying a GoogleAdsFailure, QuotaErrorDetails.retryDelay) and an OAuth2 token endpoint.
 * The connector under test is the real one: googleapis' OAuth2 client for the refresh-token flow, undici, the
 * incremental JSON parser, cockatiel retries and breaker.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { google } from 'googleapis';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PermanentError, RetryableError } from '../../errors/index.ts';
import { freePort } from '../../infra/ports.ts';
import { waitFor } from '../../testing/index.ts';
import { resetBreakers } from '../resilience.ts';
import { AdsErrorCode, type RowBatch } from '../types.ts';
import { GoogleAdsConnector, type GoogleAdsConfig } from './connector.ts';

const V = 'v21';
const FAILURE_TYPE = `type.googleapis.com/google.ads.googleads.${V}.errors.GoogleAdsFailure`;

interface Seen {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

type Handler = (req: Seen, res: ServerResponse) => void | Promise<void>;

/** The stand-in: records every request and answers API calls with whatever the test installed. */
class StandIn {
  server!: Server;
  url = '';
  api: Handler = (_req, res) => {
    res.writeHead(500).end();
  };
  token: Handler = (_req, res) => {
    this.tokensIssued += 1;
    json(res, 200, { access_token: `at-${this.tokensIssued}`, expires_in: 3600, token_type: 'Bearer' });
  };
  tokensIssued = 0;
  tokenCalls = 0;
  apiCalls: Seen[] = [];

  async start(): Promise<void> {
    this.server = createServer(async (req, res) => {
      const parts: Buffer[] = [];
      for await (const c of req as AsyncIterable<Buffer>) parts.push(c);
      const seen: Seen = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(parts).toString(),
      };
      if (seen.path === '/token') {
        this.tokenCalls += 1;
        await this.token(seen, res);
      } else {
        this.apiCalls.push(seen);
        await this.api(seen, res);
      }
    });
    this.server.listen(await freePort(), '127.0.0.1');
    await once(this.server, 'listening');
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', ...headers });
  res.end(JSON.stringify(body));
}

function failure(code: number, status: string, errorCode: Record<string, string>, message: string, extra: object = {}) {
  return {
    error: {
      code,
      message: code === 403 ? 'The caller does not have permission' : 'Request failed',
      status,
      details: [{ '@type': FAILURE_TYPE, errors: [{ errorCode, message, ...extra }], requestId: 'req-42' }],
    },
  };
}

/** Writes a searchStream body in small, awkwardly cut pieces, as a network would deliver it. */
async function streamChunks(res: ServerResponse, chunks: unknown[], tail = ']'): Promise<void> {
  res.writeHead(200, { 'content-type': 'application/json; charset=UTF-8' });
  const text = `[${chunks.map((c) => JSON.stringify(c)).join(',')}${tail}`;
  for (let i = 0; i < text.length; i += 37) {
    res.write(text.slice(i, i + 37));
    await new Promise((r) => setImmediate(r));
  }
  res.end();
}

let api: StandIn;
const connectors: GoogleAdsConnector[] = [];

function connector(over: Partial<GoogleAdsConfig> = {}): GoogleAdsConnector {
  const c = new GoogleAdsConnector({
    developerToken: 'dev-token-1',
    clientId: 'client-1',
    clientSecret: 'secret-1',
    refreshToken: 'refresh-1',
    baseUrl: api.url,
    tokenUrl: `${api.url}/token`,
    apiVersion: V,
    retry: { initialDelayMs: 10, maxDelayMs: 50, maxAttempts: 3, maxInlineDelayMs: 5_000 },
    breaker: { threshold: 50, halfOpenAfterMs: 60_000 },
    ...over,
  });
  connectors.push(c);
  return c;
}

async function collect(it: AsyncIterable<RowBatch>): Promise<RowBatch[]> {
  const out: RowBatch[] = [];
  for await (const b of it) out.push(b);
  return out;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

const query = {
  from: 'search_term_view',
  select: [
    'search_term_view.search_term',
    'campaign.id',
    'metrics.impressions',
    'metrics.cost_micros',
    'metrics.conversions',
  ],
};

beforeEach(async () => {
  resetBreakers();
  api = new StandIn();
  await api.start();
});

afterEach(async () => {
  await Promise.all(connectors.splice(0).map((c) => c.close()));
  await api.stop();
});

describe('Google Ads connector (against a stand-in for the real API)', () => {
  it('uses the same OAuth2 class googleapis exposes as google.auth.OAuth2', async () => {
    const { OAuth2Client } = await import('google-auth-library');
    expect(google.auth.OAuth2).toBe(OAuth2Client);
  });

  it('streams searchStream chunks into typed row batches, with the documented headers', async () => {
    api.api = (_req, res) =>
      streamChunks(res, [
        {
          results: [
            {
              searchTermView: { searchTerm: 'red "trail" shoes' },
              campaign: { id: '111' },
              metrics: { impressions: '1200', costMicros: '2500000', conversions: 1.5 },
            },
            { searchTermView: { searchTerm: 'ünïcode boots' }, campaign: { id: '112' }, metrics: { impressions: '7' } },
          ],
          fieldMask: 'searchTermView.searchTerm,campaign.id,metrics.impressions,metrics.costMicros,metrics.conversions',
          requestId: 'r1',
        },
        {
          results: [
            {
              searchTermView: { searchTerm: 'x' },
              campaign: { id: '113' },
              metrics: { impressions: '1', costMicros: '10000' },
            },
          ],
          requestId: 'r1',
        },
        { fieldMask: 'searchTermView.searchTerm', requestId: 'r1', queryResourceConsumption: '12' },
      ]);
    const c = connector({ loginCustomerId: '999-888-7777' });
    const batches = await collect(
      c.streamReport({ id: '123-456-7890' }, { ...query, dateRange: { start: '2025-01-01', end: '2025-01-31' } }),
    );
    expect(batches).toHaveLength(1); // rows are re-batched by batchRows, not by the platform's chunks
    expect(batches[0]!.schema.map((s) => [s.name, s.type])).toEqual([
      ['search_term_view.search_term', 'string'],
      ['campaign.id', 'id'],
      ['metrics.impressions', 'integer'],
      ['metrics.cost', 'money'],
      ['metrics.conversions', 'number'],
    ]);
    expect(batches[0]!.rows).toEqual([
      ['red "trail" shoes', '111', 1200, 2.5, 1.5],
      ['ünïcode boots', '112', 7, 0, 0],
      ['x', '113', 1, 0.01, 0],
    ]);
    const call = api.apiCalls[0]!;
    expect(call.method).toBe('POST');
    expect(call.path).toBe(`/${V}/customers/1234567890/googleAds:searchStream`);
    expect(call.headers.authorization).toBe('Bearer at-1');
    expect(call.headers['developer-token']).toBe('dev-token-1');
    expect(call.headers['login-customer-id']).toBe('9998887777');
    expect(JSON.parse(call.body)).toEqual({
      query:
        "SELECT search_term_view.search_term, campaign.id, metrics.impressions, metrics.cost_micros, metrics.conversions FROM search_term_view WHERE segments.date BETWEEN '2025-01-01' AND '2025-01-31'",
    });
  });

  it('hands out rows in batches of batchRows, whatever the platform chunking', async () => {
    const row = (i: number) => ({ campaign: { id: String(i) } });
    api.api = (_req, res) =>
      streamChunks(res, [
        { results: Array.from({ length: 7 }, (_, i) => row(i)) },
        { results: Array.from({ length: 7 }, (_, i) => row(7 + i)) },
      ]);
    const batches = await collect(
      connector({ batchRows: 5 }).streamReport({ id: '1' }, { from: 'campaign', select: ['campaign.id'] }),
    );
    expect(batches.map((b) => b.rows.length)).toEqual([5, 5, 4]);
    expect(batches.flatMap((b) => b.rows.map((r) => r[0]))).toEqual(Array.from({ length: 14 }, (_, i) => String(i)));
  });

  it('refreshes the access token once on UNAUTHENTICATED, then succeeds', async () => {
    api.api = (req, res) => {
      if (req.headers.authorization === 'Bearer at-1') {
        json(
          res,
          401,
          failure(401, 'UNAUTHENTICATED', { authenticationError: 'OAUTH_TOKEN_EXPIRED' }, 'OAuth token expired.'),
        );
      } else streamChunks(res, [{ results: [{ campaign: { id: '1' } }] }]);
    };
    const batches = await collect(connector().streamReport({ id: '1' }, { from: 'campaign', select: ['campaign.id'] }));
    expect(batches[0]!.rows).toEqual([['1']]);
    expect(api.tokenCalls).toBe(2);
    expect(api.apiCalls.map((c) => c.headers.authorization)).toEqual(['Bearer at-1', 'Bearer at-2']);
  });

  it('maps a persistent UNAUTHENTICATED to a permanent auth error with the platform message', async () => {
    api.api = (_req, res) =>
      json(
        res,
        401,
        failure(
          401,
          'UNAUTHENTICATED',
          { authenticationError: 'NOT_ADS_USER' },
          'User in the cookie is not a valid Ads user.',
        ),
      );
    const err = await rejection(collect(connector().streamReport({ id: '1' }, query)));
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).code).toBe(AdsErrorCode.Auth);
    expect((err as Error).message).toContain('authenticationError.NOT_ADS_USER');
    expect((err as Error).message).toContain('User in the cookie is not a valid Ads user.');
    expect((err as Error).message).toContain('req-42');
  });

  it('maps PERMISSION_DENIED (also in the array-wrapped form) to a permanent no-access error without retrying', async () => {
    api.api = (_req, res) =>
      json(res, 403, [
        failure(
          403,
          'PERMISSION_DENIED',
          { authorizationError: 'USER_PERMISSION_DENIED' },
          "User doesn't have permission to access customer.",
        ),
      ]);
    const err = await rejection(collect(connector().streamReport({ id: '1' }, query)));
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).code).toBe(AdsErrorCode.NoAccess);
    expect((err as Error).message).toContain("User doesn't have permission to access customer.");
    expect(api.apiCalls).toHaveLength(1);
  });

  it('maps INVALID_ARGUMENT query errors to a permanent bad-query error', async () => {
    api.api = (_req, res) =>
      json(
        res,
        400,
        failure(
          400,
          'INVALID_ARGUMENT',
          { queryError: 'UNRECOGNIZED_FIELD' },
          "Unrecognized field in the query: 'metrics.nope'.",
        ),
      );
    const err = await rejection(collect(connector().streamReport({ id: '1' }, query)));
    expect((err as PermanentError).code).toBe(AdsErrorCode.BadQuery);
    expect((err as Error).message).toContain('queryError.UNRECOGNIZED_FIELD');
  });

  it('waits out RESOURCE_EXHAUSTED for the quota retryDelay, then retries', async () => {
    const times: number[] = [];
    api.api = (_req, res) => {
      times.push(Date.now());
      if (times.length === 1) {
        json(
          res,
          429,
          failure(429, 'RESOURCE_EXHAUSTED', { quotaError: 'RESOURCE_TEMPORARILY_EXHAUSTED' }, 'Too many requests.', {
            details: {
              quotaErrorDetails: { rateScope: 'ACCOUNT', rateName: 'Requests per account', retryDelay: '0.3s' },
            },
          }),
        );
      } else streamChunks(res, [{ results: [{ campaign: { id: '7' } }] }]);
    };
    const batches = await collect(connector().streamReport({ id: '1' }, { from: 'campaign', select: ['campaign.id'] }));
    expect(batches[0]!.rows).toEqual([['7']]);
    expect(times).toHaveLength(2);
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(290);
  });

  it('hands a long quota delay back to the caller as a RetryableError with retryAfterMs', async () => {
    api.api = (_req, res) =>
      json(
        res,
        429,
        failure(
          429,
          'RESOURCE_EXHAUSTED',
          { quotaError: 'RESOURCE_EXHAUSTED' },
          'Too many requests. Retry in 120 seconds.',
          {
            details: { quotaErrorDetails: { rateScope: 'DEVELOPER', retryDelay: '120s' } },
          },
        ),
      );
    const err = await rejection(collect(connector().streamReport({ id: '1' }, query)));
    expect(err).toBeInstanceOf(RetryableError);
    expect((err as RetryableError).code).toBe(AdsErrorCode.RateLimited);
    expect((err as RetryableError).retryAfterMs).toBe(120_000);
    expect(api.apiCalls).toHaveLength(1);
  });

  it('retries INTERNAL with backoff and gives up with a retryable error after maxAttempts', async () => {
    api.api = (_req, res) =>
      json(res, 500, { error: { code: 500, message: 'Internal error encountered.', status: 'INTERNAL' } });
    const err = await rejection(collect(connector().streamReport({ id: '1' }, query)));
    expect(err).toBeInstanceOf(RetryableError);
    expect((err as RetryableError).code).toBe(AdsErrorCode.Unavailable);
    expect((err as Error).message).toContain('Internal error encountered.');
    expect(api.apiCalls).toHaveLength(3);
  });

  it('succeeds when INTERNAL clears up within the retries', async () => {
    api.api = (_req, res) => {
      if (api.apiCalls.length < 3)
        json(res, 503, {
          error: { code: 503, message: 'The service is currently unavailable.', status: 'UNAVAILABLE' },
        });
      else streamChunks(res, [{ results: [{ campaign: { id: '9' } }] }]);
    };
    const batches = await collect(connector().streamReport({ id: '1' }, { from: 'campaign', select: ['campaign.id'] }));
    expect(batches[0]!.rows).toEqual([['9']]);
    expect(api.apiCalls).toHaveLength(3);
  });

  it('opens the platform circuit breaker after repeated unavailability and stops calling', async () => {
    api.api = (_req, res) => json(res, 503, { error: { code: 503, message: 'unavailable', status: 'UNAVAILABLE' } });
    const c = connector({ retry: { maxAttempts: 1 }, breaker: { threshold: 3, halfOpenAfterMs: 60_000 } });
    for (let i = 0; i < 3; i++) {
      expect(((await rejection(collect(c.streamReport({ id: '1' }, query)))) as RetryableError).code).toBe(
        AdsErrorCode.Unavailable,
      );
    }
    const err = (await rejection(collect(c.streamReport({ id: '1' }, query)))) as RetryableError;
    expect(err.code).toBe(AdsErrorCode.CircuitOpen);
    expect(err.retryAfterMs).toBe(60_000);
    expect(api.apiCalls).toHaveLength(3);
    // Permanent errors never count: another platform key is unaffected, and a 403 does not open the breaker.
    resetBreakers();
    api.api = (_req, res) =>
      json(res, 403, failure(403, 'PERMISSION_DENIED', { authorizationError: 'USER_PERMISSION_DENIED' }, 'no'));
    const d = connector({ retry: { maxAttempts: 1 }, breaker: { threshold: 2, halfOpenAfterMs: 60_000 } });
    for (let i = 0; i < 4; i++) {
      expect(((await rejection(collect(d.streamReport({ id: '1' }, query)))) as PermanentError).code).toBe(
        AdsErrorCode.NoAccess,
      );
    }
  });

  it('delivers rows before a mid-stream error, then throws the mapped error', async () => {
    api.api = (_req, res) =>
      streamChunks(res, [
        { results: [{ campaign: { id: '1' } }, { campaign: { id: '2' } }] },
        { error: { code: 500, message: 'Internal error encountered.', status: 'INTERNAL' } },
      ]);
    const got: string[] = [];
    const err = await rejection(
      (async () => {
        for await (const b of connector().streamReport({ id: '1' }, { from: 'campaign', select: ['campaign.id'] })) {
          for (const r of b.rows) got.push(String(r[0]));
        }
      })(),
    );
    expect(got).toEqual(['1', '2']);
    expect((err as RetryableError).code).toBe(AdsErrorCode.Unavailable);
    expect(api.apiCalls).toHaveLength(1); // rows were delivered: no silent retry
  });

  it('reports a partialFailureError through onPartialFailure and keeps the rows', async () => {
    api.api = (_req, res) =>
      streamChunks(res, [
        {
          results: [{ campaign: { id: '5' } }],
          partialFailureError: {
            code: 3,
            message: 'Multiple errors in details.',
            details: [
              {
                '@type': FAILURE_TYPE,
                errors: [
                  {
                    errorCode: { queryError: 'PROHIBITED_METRIC_IN_SELECT_OR_WHERE_CLAUSE' },
                    message: 'one part failed',
                  },
                ],
              },
            ],
          },
        },
      ]);
    const seen: Error[] = [];
    const c = connector({ onPartialFailure: (e) => seen.push(e) });
    const batches = await collect(c.streamReport({ id: '1' }, { from: 'campaign', select: ['campaign.id'] }));
    expect(batches[0]!.rows).toEqual([['5']]);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toBeInstanceOf(PermanentError);
    expect(seen[0]!.message).toContain('queryError.PROHIBITED_METRIC_IN_SELECT_OR_WHERE_CLAUSE');
    expect(seen[0]!.message).toContain('one part failed');
  });

  it('treats a truncated stream as retryable', async () => {
    api.api = (_req, res) => streamChunks(res, [{ results: [{ campaign: { id: '1' } }] }], '');
    const err = await rejection(
      collect(connector().streamReport({ id: '1' }, { from: 'campaign', select: ['campaign.id'] })),
    );
    expect(err).toBeInstanceOf(RetryableError);
    expect((err as Error).message).toMatch(/truncated/);
  });

  it('maps a revoked refresh token to a permanent auth error without calling the API', async () => {
    api.token = (_req, res) =>
      json(res, 400, { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' });
    const err = await rejection(connector().listAccounts());
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).code).toBe(AdsErrorCode.Auth);
    expect((err as Error).message).toContain('Token has been expired or revoked.');
    expect(api.apiCalls).toHaveLength(0);
  });

  it('refreshes once for many concurrent calls (single-flight per connection)', async () => {
    api.api = (_req, res) => streamChunks(res, [{ results: [{ campaign: { id: '1' } }] }]);
    const c = connector();
    await Promise.all(
      Array.from({ length: 6 }, () =>
        collect(c.streamReport({ id: '1' }, { from: 'campaign', select: ['campaign.id'] })),
      ),
    );
    expect(api.tokenCalls).toBe(1);
    expect(api.apiCalls).toHaveLength(6);
  });

  it('times out a call whose response never starts, as retryable', async () => {
    api.api = () => {}; // never answers
    const c = connector({ retry: { maxAttempts: 1 }, timeoutMs: 200 });
    const err = await rejection(c.listAccounts());
    expect(err).toBeInstanceOf(RetryableError);
    expect((err as RetryableError).code).toBe(AdsErrorCode.Timeout);
  });

  it('fails a stream that stalls mid-body with a retryable timeout', async () => {
    api.api = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('[{"results":[{"campaign":{"id":"1"}},'); // and then nothing more
    };
    const c = connector({ timeoutMs: 200 });
    const err = await rejection(collect(c.streamReport({ id: '1' }, { from: 'campaign', select: ['campaign.id'] })));
    expect(err).toBeInstanceOf(RetryableError);
    expect((err as RetryableError).code).toBe(AdsErrorCode.Timeout);
  });

  it('never mistakes a slow consumer (backpressure) for a stalled server', async () => {
    api.api = (_req, res) => streamChunks(res, [{ results: [1, 2, 3].map((i) => ({ campaign: { id: String(i) } })) }]);
    const c = connector({ timeoutMs: 100, batchRows: 1 });
    const ids: unknown[] = [];
    for await (const b of c.streamReport({ id: '1' }, { from: 'campaign', select: ['campaign.id'] })) {
      ids.push(b.rows[0]![0]);
      await new Promise((r) => setTimeout(r, 250)); // the consumer is slower than the timeout
    }
    expect(ids).toEqual(['1', '2', '3']);
  });

  it('stops at once when the caller aborts, with the abort reason', async () => {
    api.api = () => {};
    const ac = new AbortController();
    const p = rejection(connector().listAccounts({ signal: ac.signal }));
    await waitFor(() => api.apiCalls.length === 1, { what: 'the request to reach the stand-in' });
    ac.abort();
    const err = await p;
    expect((err as Error).name).toBe('AbortError');
  });

  it('lists accessible accounts with the manager hierarchy through customer_client', async () => {
    const client = (id: string, level: number, manager: boolean, name: string, status = 'ENABLED') => ({
      customerClient: {
        resourceName: `customers/x/customerClients/${id}`,
        clientCustomer: `customers/${id}`,
        id,
        level: String(level),
        manager,
        descriptiveName: name,
        currencyCode: 'EUR',
        timeZone: 'Europe/Berlin',
        status,
      },
    });
    const tree: Record<string, unknown[]> = {
      '100': [client('100', 0, true, 'Agency'), client('200', 1, true, 'Sub-MCC'), client('300', 1, false, 'Shop A')],
      '200': [client('200', 0, true, 'Sub-MCC'), client('400', 1, false, 'Shop B', 'CLOSED')],
      '500': [client('500', 0, false, 'Solo')],
    };
    api.api = (req, res) => {
      if (req.path === `/${V}/customers:listAccessibleCustomers`) {
        json(res, 200, { resourceNames: ['customers/100', 'customers/500', 'customers/600'] });
        return;
      }
      const id = /customers\/(\d+)\//.exec(req.path)![1]!;
      expect(JSON.parse(req.body).query).toContain('customer_client.level <= 1');
      if (id === '600')
        json(
          res,
          403,
          failure(403, 'PERMISSION_DENIED', { authorizationError: 'CUSTOMER_NOT_ENABLED' }, 'not enabled'),
        );
      else streamChunks(res, [{ results: tree[id] }]);
    };
    const accounts = await connector().listAccounts();
    const byId = Object.fromEntries(accounts.map((a) => [a.id, a]));
    expect(Object.keys(byId).sort()).toEqual(['100', '200', '300', '400', '500']);
    expect(byId['100']).toMatchObject({
      manager: true,
      parentId: null,
      level: 0,
      loginCustomerId: undefined,
      name: 'Agency',
    });
    expect(byId['200']).toMatchObject({ manager: true, parentId: '100', level: 1, loginCustomerId: '100' });
    expect(byId['400']).toMatchObject({
      manager: false,
      parentId: '200',
      level: 2,
      loginCustomerId: '100',
      status: 'CLOSED',
    });
    expect(byId['500']).toMatchObject({ parentId: null, level: 0, currency: 'EUR', timeZone: 'Europe/Berlin' });
    const sub = api.apiCalls.find((c) => c.path.includes('/customers/200/'))!;
    expect(sub.headers['login-customer-id']).toBe('100');
  });
});
