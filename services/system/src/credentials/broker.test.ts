/**
 * The credential broker against a real nats-server (a private one: `svc.credentials.token` is a fixed subject, so no
 * other test file's broker may answer here), a real PostgreSQL (a fresh database for this file), the demo ad
 * platform in-process (its OAuth2 `/token` and its Google Ads-shaped API), and, for the google-ads path, a local
 * STAND-IN FOR GOOGLE'S OAUTH2 TOKEN ENDPOINT (./google-token-stand-in.ts) reached through google-auth-library's
 * OAuth2Client exactly as https://oauth2.googleapis.com/token would be.
 */
import type { MikroORM } from '@mikro-orm/postgresql';
import type { Subscription } from '@nats-io/transport-node';
import type { DemoPlatform } from '@ppc/lib/ads';
import { startDemoPlatform } from '@ppc/lib/ads';
import { AdsErrorCode } from '@ppc/lib/ads';
import { CredentialErrorCode, connectorForRun, requestAccessToken } from '@ppc/lib/credentials';
import { Connection, generateKey, migrate, openDatabase, openSecret, type RunStatus } from '@ppc/lib/db';
import { PermanentError } from '@ppc/lib/errors';
import { freePort } from '@ppc/lib/infra';
import { connectNats, type NatsConnection } from '@ppc/lib/nats';
import { privateNatsServer, waitFor } from '@ppc/lib/testing';
import { type CredentialReply, type CredentialRequest, subjects } from '@ppc/proto';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabaseUrl } from '../../../../lib/src/db/fixtures/test-database.ts';
import { AccessTokens } from './access-tokens.ts';
import { type CredentialBroker, startCredentialBroker } from './broker.ts';
import { type CredentialsConfig, credentialsConfig } from './config.ts';
import { GoogleTokenStandIn } from './google-token-stand-in.ts';
import type { ConnectionRevokedEvent } from './revocation.ts';
import { type SeededRun, seedConnection, seedRun, seedRunOnJob } from './test-fixtures.ts';

let server: Awaited<ReturnType<typeof privateNatsServer>>;
let nc: NatsConnection;
let orm: MikroORM;
let demo: DemoPlatform;
let google: GoogleTokenStandIn;
let config: CredentialsConfig;
let broker: CredentialBroker;
/** Added to the token cache's clock: lets a test age cached tokens without waiting. */
let clockOffset = 0;
const revoked: ConnectionRevokedEvent[] = [];
const logLines: string[] = [];
/** Everything published on the private server: requests, grants, refusals. */
const wire: string[] = [];
let tap: Subscription;
/** Every refresh token this file seals: none may ever leave the broker. */
const secrets = new Set<string>();

const log = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });

function refreshToken(prefix: string): string {
  const t = `${prefix}-${crypto.randomUUID()}`;
  secrets.add(t);
  return t;
}

async function seeded(
  opts: { platform?: 'demo' | 'google-ads'; refreshToken?: string; status?: RunStatus } = {},
): Promise<SeededRun> {
  const platform = opts.platform ?? 'demo';
  const rt = opts.refreshToken ?? (platform === 'demo' ? 'demo' : refreshToken('rt'));
  const conn = await seedConnection(orm, config.keyring, { platform, refreshToken: rt });
  return seedRun(orm, conn, { platform, ...(opts.status && { status: opts.status }) });
}

const requestOf = (s: SeededRun): CredentialRequest => ({
  runId: s.runId,
  accountId: s.accountId,
  connectionId: s.connectionId,
  platform: s.platform,
});

/** A raw request, as a worker sends it; the reply both parsed and as sent. */
async function ask(body: unknown): Promise<{ raw: string; reply: CredentialReply }> {
  const m = await nc.request(subjects.credentialsToken, JSON.stringify(body), { timeout: 15_000 });
  const raw = m.string();
  return { raw, reply: JSON.parse(raw) as CredentialReply };
}

async function refusalOf(body: unknown): Promise<Extract<CredentialReply, { ok: false }>> {
  const { reply } = await ask(body);
  if (reply.ok) throw new Error('expected a refusal, got a grant');
  return reply;
}

const connectionRow = (id: string) => orm.em.fork().findOneOrFail(Connection, id);

beforeAll(async () => {
  server = await privateNatsServer();
  nc = await connectNats({ servers: server.url, name: 'broker-test' });
  tap = nc.subscribe('>', {
    callback: (_e, m) => void wire.push(`${m.subject} ${m.headers?.toString() ?? ''} ${m.string()}`),
  });
  orm = await openDatabase(await freshDatabaseUrl('credentials'));
  await migrate(orm);
  demo = await startDemoPlatform({ port: await freePort(), seed: 7 });
  google = await new GoogleTokenStandIn().start();
  config = credentialsConfig({
    secretKey: `k1:${generateKey()}`,
    googleClientId: 'client-1',
    googleClientSecret: 'secret-1',
    googleDeveloperToken: 'dev-token-1',
    googleTokenUrl: google.url,
    googleAdsApiUrl: 'http://127.0.0.1:9/ads',
    demoPlatformUrl: demo.url,
  });
  broker = await startCredentialBroker(
    { nc, orm, log, config },
    {
      onConnectionRevoked: (e) => void revoked.push(e),
      tokenOptions: { tokenRetries: 0, now: () => Date.now() + clockOffset },
    },
  );
});

afterEach(() => {
  clockOffset = 0;
  google.failure = undefined;
  google.release();
});

afterAll(async () => {
  await broker?.stop();
  tap?.unsubscribe();
  await nc?.close();
  await google?.stop();
  await demo?.close();
  await orm?.close(true);
  await server?.[Symbol.asyncDispose]();
});

describe('credential broker: who gets a token', () => {
  it('grants a queued or running run a token the demo platform accepts, with its API and developer token', async () => {
    const s = await seeded();
    const running = await seedRunOnJob(orm, s, 'running');
    for (const runId of [s.runId, running]) {
      const { reply } = await ask({ ...requestOf(s), runId });
      expect(reply).toMatchObject({ ok: true, platform: 'demo', apiBaseUrl: demo.url, developerToken: 'demo' });
      if (!reply.ok) return;
      const left = Date.parse(reply.expiresAt) - Date.now();
      expect(left).toBeGreaterThan(50 * 60_000);
      expect(left).toBeLessThanOrEqual(3_600_000);
    }
    // The worker's side, end to end: the connector it gets lists the accounts with that token.
    const connector = await connectorForRun(nc, requestOf(s));
    try {
      const accounts = await connector.listAccounts();
      expect(accounts.map((a) => a.id).sort()).toEqual(demo.world.accounts.map((a) => a.id).sort());
    } finally {
      await connector.close();
    }
  });

  it.each(['succeeded', 'failed', 'cancelled'] as const)('refuses a %s run with RUN_NOT_ACTIVE', async (status) => {
    const s = await seeded({ status });
    const r = await refusalOf(requestOf(s));
    expect(r).toMatchObject({ code: CredentialErrorCode.RunNotActive, retryable: false });
    expect(r.message).toContain(status);
    const err = await requestAccessToken(nc, requestOf(s)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({ code: CredentialErrorCode.RunNotActive });
  });

  it('refuses a run that does not exist with RUN_NOT_FOUND', async () => {
    const s = await seeded();
    const r = await refusalOf({ ...requestOf(s), runId: crypto.randomUUID() });
    expect(r).toMatchObject({ code: CredentialErrorCode.RunNotFound, retryable: false });
  });

  it('refuses a run asking for another account, connection or platform, or across organizations', async () => {
    const s = await seeded();
    const other = await seeded();
    expect(await refusalOf({ ...requestOf(s), accountId: other.accountId })).toMatchObject({
      code: CredentialErrorCode.AccountMismatch,
      retryable: false,
    });
    expect(await refusalOf({ ...requestOf(s), connectionId: other.connectionId })).toMatchObject({
      code: CredentialErrorCode.ConnectionMismatch,
      retryable: false,
    });
    expect(await refusalOf({ ...requestOf(s), platform: 'google-ads' })).toMatchObject({
      code: CredentialErrorCode.ConnectionMismatch,
    });
    // A job of another organization pointing at this account (a tenant leak in the data) gets nothing.
    const foreign = await seedRun(orm, await seedConnection(orm, config.keyring, { refreshToken: 'demo' }), {});
    const intruder = await seedRun(orm, { ...foreign }, { jobOrgId: s.orgId });
    expect(await refusalOf(requestOf(intruder))).toMatchObject({ code: CredentialErrorCode.AccountMismatch });
  });

  it('refuses an invalid request with CREDENTIALS_INVALID_REQUEST naming the field', async () => {
    const s = await seeded();
    const missing = await refusalOf({ runId: s.runId, accountId: s.accountId, platform: 'demo' });
    expect(missing).toMatchObject({ code: CredentialErrorCode.InvalidRequest, retryable: false });
    expect(missing.message).toContain('connectionId');
    const badPlatform = await refusalOf({ ...requestOf(s), platform: 'bing' });
    expect(badPlatform.message).toContain('/platform');
    const notUuid = await refusalOf({ ...requestOf(s), runId: 'run-1' });
    expect(notUuid).toMatchObject({ code: CredentialErrorCode.InvalidRequest });
    expect(notUuid.message).toContain('runId');
    const m = await nc.request(subjects.credentialsToken, 'not json', { timeout: 5000 });
    expect(JSON.parse(m.string())).toMatchObject({ ok: false, code: CredentialErrorCode.InvalidRequest });
  });
});

describe('credential broker: refresh', () => {
  it('refreshes through the Google token endpoint with the sealed refresh token and the OAuth client', async () => {
    const rt = refreshToken('rt-google');
    const s = await seeded({ platform: 'google-ads', refreshToken: rt });
    const { reply } = await ask(requestOf(s));
    expect(reply).toMatchObject({
      ok: true,
      platform: 'google-ads',
      developerToken: 'dev-token-1',
      apiBaseUrl: 'http://127.0.0.1:9/ads',
    });
    expect(reply.ok && reply.accessToken).toMatch(/^ya29\.stand-in-/);
    expect(google.calls.filter((c) => c.refreshToken === rt)).toEqual([
      { grantType: 'refresh_token', refreshToken: rt, clientId: 'client-1', clientSecret: 'secret-1' },
    ]);
  });

  it('shares one refresh among concurrent requests for a connection (single-flight)', async () => {
    const rt = refreshToken('rt-flight');
    const s = await seeded({ platform: 'google-ads', refreshToken: rt });
    const runs = [s.runId, ...(await Promise.all(Array.from({ length: 7 }, () => seedRunOnJob(orm, s))))];
    const joinedBefore = broker.tokens.stats().joined;
    google.hold();
    const replies = Promise.all(runs.map((runId) => ask({ ...requestOf(s), runId })));
    // Released only once the other seven are waiting on the first one's refresh.
    await waitFor(() => broker.tokens.stats().joined - joinedBefore === 7, { what: '7 requests joining the refresh' });
    google.release();
    const tokens = (await replies).map(({ reply }) => (reply.ok ? reply.accessToken : reply.code));
    expect(new Set(tokens).size).toBe(1);
    expect(tokens[0]).toMatch(/^ya29\./);
    expect(google.callsWith(rt)).toBe(1);
  });

  it('serves the cached token until shortly before it expires, then refreshes', async () => {
    const rt = refreshToken('rt-cache');
    const s = await seeded({ platform: 'google-ads', refreshToken: rt });
    const first = (await ask(requestOf(s))).reply;
    const again = (await ask(requestOf(s))).reply;
    expect(again).toEqual(first);
    expect(google.callsWith(rt)).toBe(1);
    clockOffset = 57 * 60_000; // about 3 of its 60 minutes left: under the 5 minutes a worker is promised
    const later = (await ask(requestOf(s))).reply;
    expect(google.callsWith(rt)).toBe(2);
    expect(later.ok && first.ok && later.accessToken !== first.accessToken).toBe(true);
  });

  it('marks a connection whose grant was revoked (invalid_grant) and refuses with ADS_AUTH, reporting it once', async () => {
    const rt = refreshToken('rt-revoked');
    google.revoked.add(rt);
    const s = await seeded({ platform: 'google-ads', refreshToken: rt });
    const before = revoked.length;
    const r = await refusalOf(requestOf(s));
    expect(r).toMatchObject({ code: AdsErrorCode.Auth, retryable: false });
    expect(r.message).toContain('Token has been expired or revoked.');

    const row = await connectionRow(s.connectionId);
    expect(row.status).toBe('revoked');
    expect(row.lastError).toContain('invalid_grant');
    expect(row.lastErrorAt).toBeInstanceOf(Date);
    expect(revoked.slice(before)).toEqual([
      {
        orgId: s.orgId,
        connectionId: s.connectionId,
        ownerUserId: s.ownerId,
        label: s.label,
        reason: row.lastError,
        revokedAt: row.lastErrorAt,
      },
    ]);
    // Known revoked now: refused without asking the platform again, and not reported twice.
    const again = await refusalOf({ ...requestOf(s), runId: await seedRunOnJob(orm, s) });
    expect(again).toMatchObject({ code: AdsErrorCode.Auth, retryable: false });
    expect(google.callsWith(rt)).toBe(1);
    expect(revoked.length - before).toBe(1);
  });

  it("marks a demo connection revoked when the demo platform's /token refuses its grant", async () => {
    const s = await seeded({ refreshToken: 'revoked' });
    expect(await refusalOf(requestOf(s))).toMatchObject({ code: AdsErrorCode.Auth, retryable: false });
    expect((await connectionRow(s.connectionId)).status).toBe('revoked');
  });

  it('answers a token endpoint failure as retryable with a delay, leaving the connection active', async () => {
    const s = await seeded({ platform: 'google-ads' });
    google.failure = { status: 503 };
    const unavailable = await refusalOf(requestOf(s));
    expect(unavailable).toMatchObject({ code: AdsErrorCode.Unavailable, retryable: true });
    expect(unavailable.retryAfterMs).toBeGreaterThan(0);

    google.failure = { status: 429, retryAfter: '7', body: { error: 'rate_limit_exceeded' } };
    expect(await refusalOf(requestOf(s))).toMatchObject({
      code: AdsErrorCode.RateLimited,
      retryable: true,
      retryAfterMs: 7000,
    });
    expect((await connectionRow(s.connectionId)).status).toBe('active');

    google.failure = undefined;
    expect((await ask(requestOf(s))).reply.ok).toBe(true);
  });

  it('answers an unreachable token endpoint as retryable', async () => {
    const port = await freePort(); // nothing listens there
    const unreachable = await startCredentialBroker(
      {
        nc,
        orm,
        log,
        config: {
          ...config,
          platforms: {
            ...config.platforms,
            demo: { ...config.platforms.demo!, tokenUrl: `http://127.0.0.1:${port}/token` },
          },
        },
      },
      { queue: 'unreachable-only', tokenOptions: { tokenRetries: 0 } },
    );
    await broker.stop(); // only the broker under test answers
    try {
      const s = await seeded();
      const r = await refusalOf(requestOf(s));
      expect(r).toMatchObject({ code: AdsErrorCode.Unavailable, retryable: true });
      expect(r.retryAfterMs).toBeGreaterThan(0);
    } finally {
      await unreachable.stop();
      broker = await startCredentialBroker(
        { nc, orm, log, config },
        {
          tokens: broker.tokens,
        },
      );
    }
  });

  it('does not revoke connections when the token endpoint refuses our OAuth client (invalid_client)', async () => {
    const s = await seeded({ platform: 'google-ads' });
    const before = revoked.length;
    google.clientSecret = 'rotated-secret';
    try {
      const r = await refusalOf(requestOf(s));
      expect(r).toMatchObject({ code: AdsErrorCode.Auth, retryable: false });
      expect(r.message).toContain('invalid_client');
    } finally {
      google.clientSecret = 'secret-1';
    }
    expect((await connectionRow(s.connectionId)).status).toBe('active');
    expect(revoked.length).toBe(before);
  });

  it('stores a rotated refresh token sealed, and refreshes with it next time', async () => {
    const rt = refreshToken('rt-rotating');
    google.rotating.add(rt);
    const s = await seeded({ platform: 'google-ads', refreshToken: rt });
    expect((await ask(requestOf(s))).reply.ok).toBe(true);
    const row = await connectionRow(s.connectionId);
    const rotated = openSecret(row.sealedRefreshToken, config.keyring);
    secrets.add(rotated);
    expect(rotated).not.toBe(rt);
    expect(rotated.startsWith(rt)).toBe(true);
    expect(row.keyId).toBe('k1');

    clockOffset = 58 * 60_000;
    expect((await ask(requestOf(s))).reply.ok).toBe(true);
    expect(google.calls.at(-1)?.refreshToken).toBe(rotated);
    expect((await connectionRow(s.connectionId)).status).toBe('active');
  });

  it('serialises refreshes of one connection across replicas, so a rotating grant survives two at once', async () => {
    const rt = refreshToken('rt-two-replicas');
    google.rotating.add(rt);
    const s = await seeded({ platform: 'google-ads', refreshToken: rt });
    const row = await connectionRow(s.connectionId);
    const snapshot = {
      id: s.connectionId,
      platform: 'google-ads' as const,
      status: 'active' as const,
      sealedRefreshToken: row.sealedRefreshToken,
    };
    // Two replicas: two caches, two database pools.
    const orm2 = await openDatabase(orm.config.get('clientUrl')!);
    try {
      const a = new AccessTokens({ orm, config, tokenRetries: 0 });
      const b = new AccessTokens({ orm: orm2, config, tokenRetries: 0 });
      google.hold();
      const both = Promise.all([a.get(snapshot), b.get(snapshot)]);
      const waitingOnLock = async () =>
        (
          await orm.em
            .fork()
            .execute<{ n: number }[]>(
              `select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted`,
            )
        )[0]!.n === 1;
      await waitFor(waitingOnLock, { what: 'the second replica to wait on the refresh lock' });
      expect(google.callsWith(rt)).toBe(1);
      google.release();
      const [ta, tb] = await both;
      expect(ta.accessToken).not.toBe(tb.accessToken);
      expect(google.maxOpen).toBe(1);
      // The second refresh used the token the first one rotated in, so the grant is alive.
      const after = await connectionRow(s.connectionId);
      expect(after.status).toBe('active');
      const used = google.calls.filter((c) => c.refreshToken?.startsWith(rt)).map((c) => c.refreshToken);
      expect(used).toHaveLength(2);
      expect(used[1]).not.toBe(rt);
      for (const u of used) secrets.add(u!);
      secrets.add(openSecret(after.sealedRefreshToken, config.keyring));
    } finally {
      await orm2.close(true);
    }
  });

  it('refuses a platform this deployment has no OAuth client for with PLATFORM_NOT_CONFIGURED', async () => {
    const s = await seeded({ platform: 'google-ads' });
    const demoOnly = await startCredentialBroker(
      { nc, orm, log, config: { ...config, platforms: { demo: config.platforms.demo! } } },
      { queue: 'demo-only' },
    );
    await broker.stop();
    try {
      expect(await refusalOf(requestOf(s))).toMatchObject({
        code: CredentialErrorCode.PlatformNotConfigured,
        retryable: false,
      });
    } finally {
      await demoOnly.stop();
      broker = await startCredentialBroker({ nc, orm, log, config }, { tokens: broker.tokens });
    }
  });
});

describe('credential broker: replicas and secrecy', () => {
  it('answers each request exactly once with two brokers in the queue group', async () => {
    const second = await startCredentialBroker({ nc, orm, log, config }, { tokens: broker.tokens });
    try {
      const s = await seeded();
      const runs = await Promise.all(Array.from({ length: 20 }, () => seedRunOnJob(orm, s)));
      const grantedBefore = broker.stats().granted;
      const answers = await Promise.all(
        runs.map(async (runId) => {
          const replies = await nc.requestMany(subjects.credentialsToken, JSON.stringify({ ...requestOf(s), runId }), {
            strategy: 'timer',
            maxWait: 1000,
          });
          const got: CredentialReply[] = [];
          for await (const m of replies) got.push(JSON.parse(m.string()) as CredentialReply);
          return got;
        }),
      );
      expect(answers.map((a) => a.length)).toEqual(Array(20).fill(1));
      expect(answers.every((a) => a[0]!.ok)).toBe(true);
      const byFirst = broker.stats().granted - grantedBefore;
      const bySecond = second.stats().granted;
      expect(byFirst + bySecond).toBe(20);
      expect(byFirst).toBeGreaterThan(0);
      expect(bySecond).toBeGreaterThan(0);
    } finally {
      await second.stop();
    }
  });

  it('never puts a refresh token (plain or sealed) in a reply, on the wire or in a log line', async () => {
    const rt = refreshToken('rt-secret');
    const s = await seeded({ platform: 'google-ads', refreshToken: rt });
    const revokedRt = refreshToken('rt-secret-revoked');
    google.revoked.add(revokedRt);
    const r = await seeded({ platform: 'google-ads', refreshToken: revokedRt });
    const demoRun = await seeded();
    const replies = [await ask(requestOf(s)), await ask(requestOf(r)), await ask(requestOf(demoRun))];
    expect(replies.map((x) => x.reply.ok)).toEqual([true, false, true]);
    const sealed = (await orm.em.fork().find(Connection, {}, { fields: ['sealedRefreshToken'] })).map(
      (c) => c.sealedRefreshToken,
    );
    await nc.flush();
    const everything = [...replies.map((x) => x.raw), ...wire, ...logLines].join('\n');
    expect(wire.length).toBeGreaterThan(10);
    expect(logLines.length).toBeGreaterThan(5);
    for (const secret of [...secrets, ...sealed]) expect(everything).not.toContain(secret);
    expect(everything).not.toContain('secret-1'); // nor the OAuth client secret
  });
});
