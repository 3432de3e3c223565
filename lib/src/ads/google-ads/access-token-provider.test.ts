/**
 * The Google Ads connector with an access-token provider instead of a refresh token (how workers run: the credential
 * broker holds the refresh token). The API is a local HTTP server that is a STAND-IN FOR THE REAL GOOGLE ADS API
 * (documented REST shapes: searchStream as a JSON array of chunks, google.rpc.Status errors); it also serves an
 * OAuth2 token endpoint, only to prove the connector never calls it when a provider is given.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PermanentError, RetryableError } from '../../errors/index.ts';
import { freePort } from '../../infra/ports.ts';
import { resetBreakers } from '../resilience.ts';
import { AdsErrorCode } from '../types.ts';
import { type AccessTokenProvider, GoogleAdsConnector } from './connector.ts';

const V = 'v21';

class StandIn {
  server!: Server;
  url = '';
  tokenCalls = 0;
  /** The bearer tokens of API calls, in order. */
  bearers: string[] = [];
  /** Bearer tokens the API accepts. */
  valid = new Set<string>();

  async start(): Promise<void> {
    this.server = createServer((req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      req.once('end', () => {
        if (req.url === '/token') {
          this.tokenCalls += 1;
          json(res, 200, { access_token: 'from-refresh', expires_in: 3600, token_type: 'Bearer' });
          return;
        }
        const bearer = (req.headers.authorization ?? '').replace(/^Bearer /, '');
        this.bearers.push(bearer);
        if (!this.valid.has(bearer)) {
          json(res, 401, {
            error: {
              code: 401,
              message: 'Request had invalid authentication credentials.',
              status: 'UNAUTHENTICATED',
              details: [
                {
                  '@type': `type.googleapis.com/google.ads.googleads.${V}.errors.GoogleAdsFailure`,
                  errors: [{ errorCode: { authenticationError: 'OAUTH_TOKEN_INVALID' }, message: 'invalid token' }],
                  requestId: 'req-1',
                },
              ],
            },
          });
          return;
        }
        json(res, 200, { resourceNames: [] });
      });
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

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8' });
  res.end(JSON.stringify(body));
}

let api: StandIn;
const connectors: GoogleAdsConnector[] = [];

/** A provider that records each call and answers from `tokens` in turn (the last one repeats). */
function recordingProvider(tokens: Array<string | Error>, gate?: Promise<void>) {
  const calls: Array<{ force: boolean }> = [];
  const provider: AccessTokenProvider = async (opts) => {
    calls.push(opts);
    await gate;
    const next = tokens[Math.min(calls.length - 1, tokens.length - 1)]!;
    if (next instanceof Error) throw next;
    return next;
  };
  return { calls, provider };
}

function connector(accessToken: AccessTokenProvider): GoogleAdsConnector {
  const c = new GoogleAdsConnector({
    developerToken: 'dev-token-1',
    accessToken,
    baseUrl: api.url,
    tokenUrl: `${api.url}/token`,
    apiVersion: V,
    retry: { initialDelayMs: 10, maxDelayMs: 50, maxAttempts: 2, maxInlineDelayMs: 1_000 },
    breaker: { threshold: 50, halfOpenAfterMs: 60_000 },
  });
  connectors.push(c);
  return c;
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

beforeEach(async () => {
  resetBreakers();
  api = new StandIn();
  await api.start();
});

afterEach(async () => {
  await Promise.all(connectors.splice(0).map((c) => c.close()));
  await api.stop();
});

describe('Google Ads connector with an access-token provider', () => {
  it("sends the provider's token and never calls the OAuth token endpoint", async () => {
    api.valid.add('from-broker');
    const { calls, provider } = recordingProvider(['from-broker']);
    const c = connector(provider);
    await c.listAccounts();
    await c.listAccounts();
    expect(api.bearers).toEqual(['from-broker', 'from-broker']);
    expect(calls).toEqual([{ force: false }, { force: false }]);
    expect(api.tokenCalls).toBe(0);
  });

  it('asks the provider once more with force after a 401, and retries with the new token', async () => {
    api.valid.add('fresh');
    const { calls, provider } = recordingProvider(['stale', 'fresh']);
    await connector(provider).listAccounts();
    expect(calls).toEqual([{ force: false }, { force: true }]);
    expect(api.bearers).toEqual(['stale', 'fresh']);
  });

  it('maps a 401 that persists after the forced token to a permanent auth error', async () => {
    const { calls, provider } = recordingProvider(['stale', 'still-stale']);
    const err = await rejection(connector(provider).listAccounts());
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).code).toBe(AdsErrorCode.Auth);
    expect(calls.filter((c) => c.force)).toHaveLength(1);
  });

  it('shares one pending provider call among concurrent API calls', async () => {
    api.valid.add('shared');
    const gate = Promise.withResolvers<void>();
    const { calls, provider } = recordingProvider(['shared'], gate.promise);
    const c = connector(provider);
    const all = Promise.all(Array.from({ length: 5 }, () => c.listAccounts()));
    gate.resolve();
    await all;
    expect(calls).toHaveLength(1);
    expect(api.bearers).toEqual(Array(5).fill('shared'));
  });

  it("passes the provider's typed errors through unchanged, without calling the API", async () => {
    const permanent = new PermanentError('run is not active', { code: 'RUN_NOT_ACTIVE' });
    const err = await rejection(connector(recordingProvider([permanent]).provider).listAccounts());
    expect(err).toBe(permanent);

    const retryable = new RetryableError('broker busy', { code: 'ADS_UNAVAILABLE', retryAfterMs: 1234 });
    const err2 = await rejection(connector(recordingProvider([retryable]).provider).listAccounts());
    expect(err2).toBe(retryable);
    expect((err2 as RetryableError).retryAfterMs).toBe(1234);
    expect(api.bearers).toEqual([]);
  });

  it('treats an empty token from the provider as a permanent auth error', async () => {
    const err = await rejection(connector(recordingProvider(['']).provider).listAccounts());
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).code).toBe(AdsErrorCode.Auth);
    expect((err as Error).message).toContain('access-token provider returned no access token');
  });

  it('refuses a config with neither a provider nor refresh-token credentials, naming what is missing', () => {
    expect(() => new GoogleAdsConnector({ developerToken: 'd', clientId: 'c' })).toThrow(
      /clientSecret, refreshToken required unless an accessToken provider is given/,
    );
  });
});
