import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type DemoPlatform, startDemoPlatform } from '@ppc/lib/ads';
import { AdAccount, Connection, Job, openSecret } from '@ppc/lib/db';
import { freePort } from '@ppc/lib/infra';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayConfig, type GatewayConfig, type GatewayEnv } from '../config.ts';
import type { GatewayDeps } from '../context.ts';
import { type GatewayHarness, type GqlResult, startGatewayHarness, type Tenant } from '../testing/harness.ts';
import { ensureDemoConnection } from './demo.ts';
import { CALLBACK_PATH, sealState, STATE_TTL_MS } from './google.ts';

const errorOf = (res: GqlResult) => {
  const e = res.body.errors?.[0];
  return { code: e?.extensions?.code, field: e?.extensions?.field, message: e?.message ?? '' };
};

/**
 * A STAND-IN FOR GOOGLE'S OAUTH2 TOKEN ENDPOINT (https://oauth2.googleapis.com/token), authorization-code grant as
 * documented in https://developers.google.com/identity/protocols/oauth2/web-server#exchange-authorization-code:
 * a form-encoded POST with `grant_type=authorization_code`, `code`, `client_id`, `client_secret`, `redirect_uri`;
 * answers `{access_token, expires_in, refresh_token, scope, token_type, id_token}`, or HTTP 400 with
 * `{error: "invalid_grant", error_description}` for a code it did not issue.
 */
class GoogleCodeStandIn {
  server!: Server;
  url = '';
  readonly calls: URLSearchParams[] = [];
  /** code → the refresh token and e-mail it grants. */
  readonly codes = new Map<string, { refreshToken: string; email: string }>();

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (c: Buffer) => parts.push(c));
      req.on('end', () => {
        const form = new URLSearchParams(Buffer.concat(parts).toString());
        this.calls.push(form);
        const grant = this.codes.get(form.get('code') ?? '');
        const json = (status: number, body: unknown) => {
          res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
          res.end(JSON.stringify(body));
        };
        if (form.get('grant_type') !== 'authorization_code' || !grant) {
          json(400, { error: 'invalid_grant', error_description: 'Malformed auth code.' });
          return;
        }
        const idPayload = Buffer.from(
          JSON.stringify({ iss: 'https://accounts.google.com', email: grant.email }),
        ).toString('base64url');
        json(200, {
          access_token: 'ya29.stand-in',
          expires_in: 3599,
          refresh_token: grant.refreshToken,
          scope: 'https://www.googleapis.com/auth/adwords openid email',
          token_type: 'Bearer',
          id_token: `eyJhbGciOiJSUzI1NiJ9.${idPayload}.sig`,
        });
      });
    });
    this.server.listen(await freePort(), '127.0.0.1');
    await once(this.server, 'listening');
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/token`;
    return this;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

const CONNECTIONS = '{ connections { id platform label status lastError createdAt accountCount } }';
const ACCOUNTS = `query($filter: AccountFilter, $first: Int, $after: String) {
  accounts(filter: $filter, first: $first, after: $after) {
    items { id connectionId platform platformAccountId name currency timeZone status lastSyncedAt } nextCursor
  }
}`;
const REMOVE = 'mutation($id: ID!) { removeConnection(id: $id) { id status lastError accountCount } }';
const CREATE_DEMO = 'mutation { createDemoConnection { id platform label status accountCount } }';

interface AccountView {
  id: string;
  connectionId: string;
  name: string;
  status: string;
  currency: string;
  timeZone: string;
}

describe('connections API', () => {
  let h: GatewayHarness;
  let demo: DemoPlatform;
  let google: GoogleCodeStandIn;
  // The gateway's own config, keyring included (the harness exposes the environment it was started with).
  let config: GatewayConfig;

  beforeAll(async () => {
    demo = await startDemoPlatform({ port: await freePort(), seed: 7 });
    google = await new GoogleCodeStandIn().start();
    h = await startGatewayHarness({
      PPC_DEMO_PLATFORM_URL: demo.url,
      PPC_GOOGLE_CLIENT_ID: 'client-1.apps.googleusercontent.com',
      PPC_GOOGLE_CLIENT_SECRET: 'stand-in-secret',
      PPC_GOOGLE_AUTH_URL: 'https://accounts.example.test/o/oauth2/v2/auth',
      PPC_GOOGLE_TOKEN_URL: google.url,
      PPC_PUBLIC_URL: 'http://ppc.example.test',
    });
    config = gatewayConfig(h.config as GatewayEnv);
  }, 60_000);
  afterAll(async () => {
    await h?.close();
    await google?.close();
    await demo?.close();
  });

  const accounts = async (t: Tenant, vars: Record<string, unknown> = {}) => {
    const res = await h.gql<{ accounts: { items: AccountView[]; nextCursor: string | null } }>(ACCOUNTS, vars, t);
    expect(res.body.errors).toBeUndefined();
    return res.body.data!.accounts;
  };

  describe('createDemoConnection', () => {
    it('connects the demo platform with a sealed credential and stores its client accounts, ready for jobs', async () => {
      const t = await h.seedTenant({ name: 'Demo' });
      const res = await h.gql<{
        createDemoConnection: { id: string; platform: string; status: string; accountCount: number };
      }>(CREATE_DEMO, {}, t);
      expect(res.body.errors).toBeUndefined();
      const conn = res.body.data!.createDemoConnection;
      // Seven client accounts in the demo world (managers are not stored), the closed one disabled.
      expect(conn).toMatchObject({ platform: 'demo', status: 'active', accountCount: 7 });
      const stored = await h.orm.em.fork().findOneOrFail(Connection, { id: conn.id });
      expect(stored.organization.id).toBe(t.orgId);
      expect(openSecret(stored.sealedRefreshToken, config.keyring)).toMatch(/^demo-/);

      const listed = await accounts(t, { filter: { connectionId: conn.id } });
      expect(listed.items).toHaveLength(7);
      const names = listed.items.map((a) => a.name);
      expect(names).toEqual([...names].sort());
      expect(listed.items.find((a) => a.name.endsWith('Japan'))).toMatchObject({
        currency: 'JPY',
        timeZone: 'Asia/Tokyo',
      });
      const disabled = await accounts(t, { filter: { connectionId: conn.id, status: 'disabled' } });
      expect(disabled.items.map((a) => a.currency)).toEqual(['CZK']);

      // A job on one of them can be created at once.
      const job = await h.gql<{ createJob: { id: string } }>(
        'mutation($input: CreateJobInput!) { createJob(input: $input) { id } }',
        {
          input: {
            name: 'Tiny performance',
            reportType: 'account-performance',
            accountId: listed.items[0]!.id,
            output: { kind: 'csv' },
          },
        },
        t,
      );
      expect(job.body.errors).toBeUndefined();
    });

    it('ensureDemoConnection creates one demo connection per organization, however often it is called', async () => {
      const t = await h.seedTenant({ name: 'Ensure' });
      // The seeded tenant's placeholder demo connection would count: revoke it to start from none.
      await h.orm.em.fork().nativeUpdate(Connection, { id: t.connectionId }, { status: 'revoked' });
      // What ensureDemoConnection uses of the gateway's deps: the database and the config.
      const gatewayDeps = { orm: h.orm, config } as GatewayDeps;
      await Promise.all([
        ensureDemoConnection(gatewayDeps, t.orgId, t.userId),
        ensureDemoConnection(gatewayDeps, t.orgId, t.userId),
      ]);
      await ensureDemoConnection(gatewayDeps, t.orgId, t.userId);
      const conns = await h.orm.em.fork().find(Connection, { organization: t.orgId, status: 'active' });
      expect(conns).toHaveLength(1);
      expect(await h.orm.em.fork().count(AdAccount, { connection: conns[0]!.id })).toBe(7);
    });
  });

  describe('connections and accounts', () => {
    it('lists connections with their account counts and pages accounts with a search', async () => {
      const t = await h.seedTenant({ name: 'Lister' });
      const made = (await h.gql<{ createDemoConnection: { id: string } }>(CREATE_DEMO, {}, t)).body.data!
        .createDemoConnection;
      const res = await h.gql<{ connections: { id: string; accountCount: number }[] }>(CONNECTIONS, {}, t);
      const counts = Object.fromEntries(res.body.data!.connections.map((c) => [c.id, c.accountCount]));
      expect(counts).toEqual({ [made.id]: 7, [t.connectionId]: 1 });

      const seen: string[] = [];
      let after: string | null = null;
      for (let i = 0; i < 10; i++) {
        const page = await accounts(t, { first: 3, after });
        seen.push(...page.items.map((a) => a.id));
        after = page.nextCursor;
        if (!after) break;
      }
      expect(seen).toHaveLength(8); // seven demo client accounts and the seeded one
      expect(new Set(seen).size).toBe(8);

      const japan = await accounts(t, { filter: { search: 'japan' } });
      expect(japan.items.map((a) => a.currency)).toEqual(['JPY']);
      const literal = await accounts(t, { filter: { search: '%' } });
      expect(literal.items).toHaveLength(0);
    });
  });

  describe('removeConnection', () => {
    it('revokes it, removes its accounts and disables their jobs with a reason', async () => {
      const t = await h.seedTenant({ name: 'Remover' });
      const job = await h.gql<{ createJob: { id: string } }>(
        'mutation($input: CreateJobInput!) { createJob(input: $input) { id } }',
        {
          input: {
            name: 'Daily',
            reportType: 'anomalies',
            accountId: t.accountId,
            output: { kind: 'xlsx' },
            cron: '0 6 * * *',
          },
        },
        t,
      );
      const jobId = job.body.data!.createJob.id;
      const res = await h.gql<{ removeConnection: { status: string; accountCount: number } }>(
        REMOVE,
        { id: t.connectionId },
        t,
      );
      expect(res.body.data?.removeConnection).toMatchObject({ status: 'revoked', accountCount: 0 });
      const em = h.orm.em.fork();
      expect((await em.findOneOrFail(Connection, { id: t.connectionId })).sealedRefreshToken).toBe('');
      expect((await em.findOneOrFail(AdAccount, { id: t.accountId })).status).toBe('removed');
      const stored = await em.findOneOrFail(Job, { id: jobId });
      expect(stored).toMatchObject({ enabled: false, nextRunAt: null });
      expect(stored.disabledReason).toMatch(/connection "demo" was removed/);
      expect((await accounts(t)).items).toHaveLength(0);
      const run = await h.gql('mutation($id: ID!) { runJob(id: $id) { id } }', { id: jobId }, t);
      expect(errorOf(run).code).toBe('CONFLICT');
    });
  });

  describe('Google Ads', () => {
    it('startGoogleConnection returns the consent URL with a sealed state', async () => {
      const t = await h.seedTenant({ name: 'Googler' });
      const res = await h.gql<{ startGoogleConnection: { authorizationUrl: string } }>(
        'mutation { startGoogleConnection { authorizationUrl } }',
        {},
        t,
      );
      const url = new URL(res.body.data!.startGoogleConnection.authorizationUrl);
      expect(url.origin + url.pathname).toBe('https://accounts.example.test/o/oauth2/v2/auth');
      expect(Object.fromEntries(url.searchParams)).toMatchObject({
        client_id: 'client-1.apps.googleusercontent.com',
        redirect_uri: `http://ppc.example.test${CALLBACK_PATH}`,
        response_type: 'code',
        access_type: 'offline',
        prompt: 'consent',
      });
      expect(url.searchParams.get('scope')).toContain('https://www.googleapis.com/auth/adwords');
      // The state is opaque: who started it is not readable from it.
      expect(url.searchParams.get('state')).not.toContain(t.userId);
    });

    const callback = (t: Tenant | null, params: Record<string, string>) =>
      fetch(`${h.url}${CALLBACK_PATH}?${new URLSearchParams(params)}`, {
        redirect: 'manual',
        headers: h.headersFor(t),
      });

    it('the callback exchanges the code and stores the refresh token sealed, then returns to the connections page', async () => {
      const t = await h.seedTenant({ name: 'Callback' });
      const start = await h.gql<{ startGoogleConnection: { authorizationUrl: string } }>(
        'mutation { startGoogleConnection { authorizationUrl } }',
        {},
        t,
      );
      const state = new URL(start.body.data!.startGoogleConnection.authorizationUrl).searchParams.get('state')!;
      const refreshToken = `1//rt-${crypto.randomUUID()}`;
      google.codes.set('code-1', { refreshToken, email: 'ads@agency.example' });

      const res = await callback(t, { code: 'code-1', state });
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe('http://ppc.example.test/connections');
      const exchange = google.calls.at(-1)!;
      expect(Object.fromEntries(exchange)).toMatchObject({
        grant_type: 'authorization_code',
        code: 'code-1',
        client_id: 'client-1.apps.googleusercontent.com',
        client_secret: 'stand-in-secret',
        redirect_uri: `http://ppc.example.test${CALLBACK_PATH}`,
      });

      const conn = await h.orm.em.fork().findOneOrFail(Connection, { organization: t.orgId, platform: 'google-ads' });
      expect(conn).toMatchObject({ label: 'ads@agency.example', status: 'active', keyId: config.keyring.currentKeyId });
      expect(conn.owner?.id).toBe(t.userId);
      expect(openSecret(conn.sealedRefreshToken, config.keyring)).toBe(refreshToken);
      // The plaintext is nowhere in the database.
      const [hit] = await h.orm.em
        .fork()
        .execute<{ n: number }[]>(`select count(*)::int as n from connections c where c::text like ?`, [
          `%${refreshToken}%`,
        ]);
      expect(hit?.n).toBe(0);
    });

    it('refuses a tampered, expired or foreign state and stores nothing', async () => {
      const t = await h.seedTenant({ name: 'Refused' });
      const other = await h.addMember(t, 'member');
      google.codes.set('code-2', { refreshToken: 'rt-never', email: 'never@agency.example' });
      const valid = sealState(config, { org: t.orgId, user: t.userId });
      const expired = sealState(config, { org: t.orgId, user: t.userId }, Date.now() - STATE_TTL_MS - 1000);
      const tampered = `${valid.slice(0, -4)}AAAA`;
      const calls = google.calls.length;

      const cases: [Tenant | null, string, number, RegExp][] = [
        [t, tampered, 400, /not one this server issued/],
        [t, expired, 400, /took too long/],
        [t, 'garbage', 400, /not one this server issued/],
        [other, valid, 400, /another user/],
        [null, valid, 401, /sign in/],
      ];
      for (const [as, state, status, message] of cases) {
        const res = await callback(as, { code: 'code-2', state });
        expect(res.status).toBe(status);
        expect(await res.text()).toMatch(message);
      }
      expect(google.calls.length).toBe(calls);
      expect(await h.orm.em.fork().count(Connection, { organization: t.orgId, platform: 'google-ads' })).toBe(0);
    });

    it('returns to the connections page with the error when Google refuses the code', async () => {
      const t = await h.seedTenant({ name: 'BadCode' });
      const state = sealState(config, { org: t.orgId, user: t.userId });
      const res = await callback(t, { code: 'not-issued', state });
      expect(res.status).toBe(302);
      expect(res.headers.get('location')).toBe('http://ppc.example.test/connections?error=token_exchange_failed');
      expect(await h.orm.em.fork().count(Connection, { organization: t.orgId, platform: 'google-ads' })).toBe(0);
    });
  });

  describe("another organization's ids", () => {
    it('are NOT_FOUND for removeConnection and the accounts filter, and nothing changes', async () => {
      const a = await h.seedTenant({ name: 'Mine' });
      const b = await h.seedTenant({ name: 'Theirs' });
      expect(errorOf(await h.gql(REMOVE, { id: b.connectionId }, a)).code).toBe('NOT_FOUND');
      expect(errorOf(await h.gql(ACCOUNTS, { filter: { connectionId: b.connectionId } }, a)).code).toBe('NOT_FOUND');
      expect(errorOf(await h.gql(REMOVE, { id: 'nope' }, a)).code).toBe('NOT_FOUND');
      const viewer = await h.addMember(a, 'viewer');
      expect(errorOf(await h.gql(REMOVE, { id: a.connectionId }, viewer)).code).toBe('FORBIDDEN');
      expect(errorOf(await h.gql(CREATE_DEMO, {}, viewer)).code).toBe('FORBIDDEN');
      const em = h.orm.em.fork();
      expect((await em.findOneOrFail(Connection, { id: b.connectionId })).status).toBe('active');
      expect((await em.findOneOrFail(Connection, { id: a.connectionId })).status).toBe('active');
      expect((await em.findOneOrFail(AdAccount, { id: b.accountId })).status).toBe('enabled');
      const mine = await h.gql<{ connections: { id: string }[] }>(CONNECTIONS, {}, a);
      expect(mine.body.data!.connections.map((c) => c.id)).toEqual([a.connectionId]);
    });
  });

  describe('on a server without Google and without a reachable demo platform', () => {
    it('startGoogleConnection and createDemoConnection answer CONFLICT saying why, and store nothing', async () => {
      const bare = await startGatewayHarness({ PPC_DEMO_PLATFORM_URL: `http://127.0.0.1:${await freePort()}` });
      try {
        const t = await bare.seedTenant({ name: 'Nothing' });
        const google = await bare.gql('mutation { startGoogleConnection { authorizationUrl } }', {}, t);
        expect(errorOf(google).code).toBe('CONFLICT');
        expect(errorOf(google).message).toMatch(/PPC_GOOGLE_CLIENT_ID/);
        const demo = await bare.gql(CREATE_DEMO, {}, t);
        expect(errorOf(demo).code).toBe('CONFLICT');
        expect(errorOf(demo).message).toMatch(/demo ad platform .* did not list accounts/);
        expect(await bare.orm.em.fork().count(Connection, { organization: t.orgId })).toBe(1); // the seeded one
      } finally {
        await bare.close();
      }
    });
  });
});
