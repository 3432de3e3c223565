/**
 * The worker side of the credential broker, against a real nats-server (a private one: the broker's subject is
 * fixed, so no other test file's broker may answer here) and the demo ad platform in-process as the API. The broker
 * is a STAND-IN that speaks the real wire contract (`credentials.request.v1` in, `credentials.reply.v1` out, core
 * request-reply); the real broker is tested with this client in services/system/src/credentials.
 */
import { headers as natsHeaders, type Msg, type Subscription } from '@nats-io/transport-node';
import { type CredentialReply, type CredentialRequest, headers, subjects } from '@ppc/proto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DemoPlatform } from '../ads/demo/start.ts';
import { startDemoPlatform } from '../ads/demo/start.ts';
import { resetBreakers } from '../ads/resilience.ts';
import { AdsErrorCode } from '../ads/types.ts';
import { PermanentError, RetryableError } from '../errors/index.ts';
import { freePort } from '../infra/ports.ts';
import { connectNats, type NatsConnection } from '../nats/connect.ts';
import { privateNatsServer, waitFor } from '../testing/index.ts';
import { CredentialErrorCode, connectorForRun, requestAccessToken } from './index.ts';

type Server = Awaited<ReturnType<typeof privateNatsServer>>;
let server: Server;
let nc: NatsConnection;
let demo: DemoPlatform;

const request: CredentialRequest = {
  runId: '11111111-1111-4111-8111-111111111111',
  accountId: '22222222-2222-4222-8222-222222222222',
  connectionId: '33333333-3333-4333-8333-333333333333',
  platform: 'demo',
};

interface Seen {
  body: unknown;
  type: string | undefined;
}

/** The stand-in broker: answers each request with what `answer` returns (undefined: no answer at all). */
class StandInBroker {
  seen: Seen[] = [];
  #sub: Subscription;
  constructor(answer: (req: CredentialRequest, n: number) => Promise<CredentialReply | string | undefined>) {
    this.#sub = nc.subscribe(subjects.credentialsToken, {
      callback: (_err, m: Msg) => {
        const body = JSON.parse(m.string()) as CredentialRequest;
        this.seen.push({ body, type: m.headers?.get(headers.type) });
        void answer(body, this.seen.length).then((reply) => {
          if (reply === undefined) return;
          const h = natsHeaders();
          h.set(headers.type, 'credentials.reply.v1');
          m.respond(typeof reply === 'string' ? reply : JSON.stringify(reply), { headers: h });
        });
      },
    });
  }
  async ready(): Promise<this> {
    await nc.flush();
    return this;
  }
  stop(): void {
    this.#sub.unsubscribe();
  }
}

let broker: StandInBroker | undefined;
async function standIn(answer: ConstructorParameters<typeof StandInBroker>[0]): Promise<StandInBroker> {
  broker = await new StandInBroker(answer).ready();
  return broker;
}

/** A real access token from the demo platform's OAuth2 endpoint (the refresh-token grant). */
async function demoToken(): Promise<{ accessToken: string; expiresAt: string }> {
  const res = await fetch(`${demo.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'demo', client_id: 'x' }),
  });
  const t = (await res.json()) as { access_token: string; expires_in: number };
  return { accessToken: t.access_token, expiresAt: new Date(Date.now() + t.expires_in * 1000).toISOString() };
}

const grant = (over: Partial<Extract<CredentialReply, { ok: true }>> = {}): CredentialReply => ({
  ok: true,
  platform: 'demo',
  accessToken: 'at-1',
  expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
  apiBaseUrl: demo.url,
  developerToken: 'demo',
  platformAccountId: '1234567890',
  ...over,
});

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

beforeAll(async () => {
  server = await privateNatsServer();
  nc = await connectNats({ servers: server.url, name: 'credentials-test' });
  demo = await startDemoPlatform({ port: await freePort(), seed: 1 });
});
afterEach(() => {
  broker?.stop();
  broker = undefined;
  resetBreakers();
});
afterAll(async () => {
  await nc?.close();
  await demo?.close();
  await server?.[Symbol.asyncDispose]();
});

describe('requestAccessToken', () => {
  it('sends a typed credentials.request.v1 and resolves with the grant', async () => {
    const b = await standIn(async () => grant({ accessToken: 'at-42', loginCustomerId: '1234567890' }));
    const got = await requestAccessToken(nc, request);
    expect(got).toMatchObject({
      ok: true,
      accessToken: 'at-42',
      developerToken: 'demo',
      loginCustomerId: '1234567890',
    });
    expect(b.seen).toEqual([{ body: request, type: 'credentials.request.v1' }]);
  });

  it("throws PermanentError with the broker's code and message for a permanent refusal", async () => {
    await standIn(async () => ({ ok: false, code: 'RUN_NOT_ACTIVE', message: 'run is succeeded', retryable: false }));
    const err = await rejection(requestAccessToken(nc, request));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({ code: 'RUN_NOT_ACTIVE' });
    expect((err as Error).message).toContain('run is succeeded');
    expect((err as Error).message).toContain(request.runId);
  });

  it('throws RetryableError keeping retryAfterMs for a retryable refusal', async () => {
    await standIn(async () => ({
      ok: false,
      code: AdsErrorCode.Unavailable,
      message: 'token endpoint down',
      retryable: true,
      retryAfterMs: 7000,
    }));
    const err = await rejection(requestAccessToken(nc, request));
    expect(err).toBeInstanceOf(RetryableError);
    expect(err).toMatchObject({ code: AdsErrorCode.Unavailable, retryAfterMs: 7000 });
  });

  it('throws a retryable CREDENTIALS_UNAVAILABLE at once when no broker is running', async () => {
    const started = Date.now();
    const err = await rejection(requestAccessToken(nc, request, { timeoutMs: 5000 }));
    expect(err).toBeInstanceOf(RetryableError);
    expect(err).toMatchObject({ code: CredentialErrorCode.Unavailable });
    expect((err as RetryableError).retryAfterMs).toBeGreaterThan(0);
    expect((err as Error).message).toMatch(/no broker is running/);
    expect(Date.now() - started).toBeLessThan(4000);
  });

  it('throws a retryable CREDENTIALS_UNAVAILABLE when the broker does not answer in time', async () => {
    await standIn(async () => undefined);
    const err = await rejection(requestAccessToken(nc, request, { timeoutMs: 200 }));
    expect(err).toBeInstanceOf(RetryableError);
    expect(err).toMatchObject({ code: CredentialErrorCode.Unavailable });
    expect((err as Error).message).toMatch(/no answer within 200 ms/);
  });

  it("rejects with the signal's reason when aborted while waiting", async () => {
    const b = await standIn(async () => undefined);
    const ac = new AbortController();
    const p = rejection(requestAccessToken(nc, request, { signal: ac.signal, timeoutMs: 10_000 }));
    await waitFor(() => b.seen.length === 1, { what: 'the request to reach the broker' });
    ac.abort();
    expect(((await p) as Error).name).toBe('AbortError');
  });

  it('refuses an invalid request with a PermanentError naming the field, without sending it', async () => {
    const b = await standIn(async () => grant());
    const err = await rejection(requestAccessToken(nc, { ...request, runId: 'not a token' }));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({ code: CredentialErrorCode.InvalidRequest });
    expect((err as Error).message).toContain('/runId');
    expect(b.seen).toHaveLength(0);
  });

  it('treats a malformed answer as retryable, without echoing what it held', async () => {
    await standIn(async () => JSON.stringify({ ok: true, accessToken: 'leaky-token', refreshToken: 'r' }));
    const err = await rejection(requestAccessToken(nc, request));
    expect(err).toBeInstanceOf(RetryableError);
    expect(err).toMatchObject({ code: CredentialErrorCode.BadReply });
    expect((err as Error).message).not.toContain('leaky-token');
  });
});

describe('connectorForRun', () => {
  it("lists the demo platform's accounts with the broker's token, endpoint and developer token", async () => {
    const b = await standIn(async () => grant(await demoToken()));
    const c = await connectorForRun(nc, { ...request, platform: 'demo' });
    try {
      const accounts = await c.listAccounts();
      expect(accounts.map((a) => a.name)).toEqual(expect.arrayContaining(demo.world.accounts.map((a) => a.name)));
      expect(c.platform).toBe('demo');
      expect(b.seen).toHaveLength(1);
    } finally {
      await c.close();
    }
  });

  it('asks the broker again only when the grant is about to expire', async () => {
    let clock = Date.now();
    const b = await standIn(async () => {
      const t = await demoToken();
      return grant({ accessToken: t.accessToken, expiresAt: new Date(clock + 10 * 60_000).toISOString() });
    });
    const c = await connectorForRun(nc, request, { now: () => clock, refreshMarginMs: 60_000 });
    try {
      await c.listAccounts();
      await c.listAccounts();
      expect(b.seen).toHaveLength(1);
      clock += 9.5 * 60_000; // 30 s left, under the margin
      await c.listAccounts();
      expect(b.seen).toHaveLength(2);
    } finally {
      await c.close();
    }
  });

  it('asks the broker once more after the API refused the token (401), then succeeds', async () => {
    const b = await standIn(async (_req, n) =>
      n === 1 ? grant({ accessToken: 'demo.99999999999999.forged' }) : grant(await demoToken()),
    );
    const c = await connectorForRun(nc, request);
    try {
      expect((await c.listAccounts()).length).toBeGreaterThan(0);
      expect(b.seen).toHaveLength(2);
      // The second request tells the broker its cached token was refused, so it refreshes instead.
      expect(b.seen.map((r) => (r.body as { force?: boolean }).force)).toEqual([undefined, true]);
    } finally {
      await c.close();
    }
  });

  it("fails with the broker's PermanentError before any API call when the run is refused", async () => {
    await standIn(async () => ({ ok: false, code: 'ACCOUNT_MISMATCH', message: 'not this account', retryable: false }));
    const err = await rejection(connectorForRun(nc, request));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({ code: 'ACCOUNT_MISMATCH' });
  });

  it('surfaces a refusal on a later token request through the connector call', async () => {
    let clock = Date.now();
    await standIn(async (_req, n) =>
      n === 1
        ? grant({ ...(await demoToken()), expiresAt: new Date(clock + 120_000).toISOString() })
        : { ok: false, code: 'RUN_NOT_ACTIVE', message: 'run was cancelled', retryable: false },
    );
    const c = await connectorForRun(nc, request, { now: () => clock });
    try {
      clock += 90_000;
      const err = await rejection(c.listAccounts());
      expect(err).toBeInstanceOf(PermanentError);
      expect(err).toMatchObject({ code: 'RUN_NOT_ACTIVE' });
    } finally {
      await c.close();
    }
  });
});
