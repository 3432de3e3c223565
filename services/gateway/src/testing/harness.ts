import type { MikroORM } from '@mikro-orm/postgresql';
import { AdAccount, Connection, generateKey, Membership, Organization, type Role, Session, User } from '@ppc/lib/db';
import { type NatsConnection, connectNats } from '@ppc/lib/nats';
import { type RunningService, runService } from '@ppc/lib/service';
import { type Client, createClient } from 'graphql-ws';
import { inject } from 'vitest';
import { freshDatabaseUrl } from '../../../../lib/src/db/fixtures/test-database.ts';
import { newSecret, SESSION_COOKIE } from '../auth/secrets.ts';
import type { GatewayConfig } from '../config.ts';
import { FastSql } from '../db/fast-sql.ts';
import { gateway } from '../main.ts';

/** A signed-in member of a fresh organization with one demo connection and one ad account. */
export interface Tenant {
  orgId: string;
  userId: string;
  email: string;
  role: Role;
  /** The raw session cookie value (send as `ppc_session=<value>`). */
  session: string;
  connectionId: string;
  accountId: string;
}

/** How a request authenticates: a tenant's session, a raw cookie or bearer token, or nobody. */
export type As = Tenant | { cookie?: string; bearer?: string } | null;

export interface GqlResult<T = Record<string, unknown>> {
  status: number;
  body: { data?: T | null; errors?: { message: string; path?: string[]; extensions?: Record<string, unknown> }[] };
  headers: Headers;
}

export interface GatewayHarness {
  url: string;
  wsUrl: string;
  /** The owner-role ORM (no row-level security): for seeding and for checking what was written. */
  orm: MikroORM;
  /** The gateway's hot-path pool type on the same database (owner role), for tests that build deps by hand. */
  sql: FastSql;
  nc: NatsConnection;
  svc: RunningService<unknown>;
  config: GatewayConfig;
  seedTenant(opts?: { name?: string; role?: Role; password?: string }): Promise<Tenant>;
  /** Adds a user with `role` to an existing tenant's organization, signed in. */
  addMember(tenant: Tenant, role: Role): Promise<Tenant>;
  gql<T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>, as?: As): Promise<GqlResult<T>>;
  /** A graphql-ws client authenticated as `as` (cookie on the upgrade, bearer in `connection_init`). */
  ws(as: As, opts?: { lazy?: boolean }): Client;
  headersFor(as: As): Record<string, string>;
  close(): Promise<void>;
}

export function cookieHeaderOf(as: As): string | undefined {
  if (!as) return undefined;
  if ('session' in as) return `${SESSION_COOKIE}=${as.session}`;
  return as.cookie ? `${SESSION_COOKIE}=${as.cookie}` : undefined;
}

/**
 * The gateway as `npm start` runs it (runService: config, NATS provisioning, migrations, every plugin) on a free
 * port, against the test run's real nats-server and a fresh database on the real PostgreSQL.
 */
export async function startGatewayHarness(env: Record<string, string> = {}): Promise<GatewayHarness> {
  const databaseUrl = await freshDatabaseUrl('gateway');
  const svc = (await runService(gateway, {
    env: {
      NATS_URL: inject('natsUrl'),
      DATABASE_URL: databaseUrl,
      PORT: '0',
      LOG_LEVEL: 'silent',
      PPC_SECRET_KEY: `k1:${generateKey()}`,
      ...env,
    },
    handleSignals: false,
  })) as RunningService<unknown>;
  const url = `http://127.0.0.1:${svc.port}`;
  const { openDatabase } = await import('@ppc/lib/db');
  const orm = await openDatabase(databaseUrl, { poolMax: 4 });
  const sql = new FastSql(databaseUrl, { max: 2 });
  const nc = await connectNats({ servers: inject('natsUrl'), name: 'gateway-test' });
  const config = (svc.ctx as unknown as { config: GatewayConfig }).config;

  async function signIn(em: ReturnType<MikroORM['em']['fork']>, orgId: string, userId: string) {
    const { secret, hash } = newSecret();
    em.create(Session, {
      organization: orgId,
      user: userId,
      tokenHash: hash,
      expiresAt: new Date(Date.now() + 3_600_000),
    });
    return secret;
  }

  let n = 0;
  const harness: GatewayHarness = {
    url,
    wsUrl: `ws://127.0.0.1:${svc.port}/graphql`,
    orm,
    sql,
    nc,
    svc,
    config,
    async seedTenant(opts = {}) {
      n += 1;
      const name = opts.name ?? `org${n}`;
      const em = orm.em.fork();
      const org = em.create(Organization, { name });
      const { hashPassword } = await import('@ppc/lib/db');
      const email = `${name.toLowerCase()}-${n}-${Date.now()}@example.com`;
      const user = em.create(User, {
        organization: org,
        email,
        name,
        passwordHash: await hashPassword(opts.password ?? 'correct horse battery'),
      });
      const role = opts.role ?? 'owner';
      em.create(Membership, { organization: org, user, role });
      const conn = em.create(Connection, {
        organization: org,
        owner: user,
        platform: 'demo',
        label: 'demo',
        sealedRefreshToken: 'v1.k.x.y.z',
        keyId: 'k',
      });
      const account = em.create(AdAccount, {
        organization: org,
        connection: conn,
        platform: 'demo',
        platformAccountId: `acc-${crypto.randomUUID()}`,
        name: `${name} account`,
        currency: 'EUR',
        timeZone: 'Europe/Prague',
      });
      await em.flush();
      const session = await signIn(em, org.id, user.id);
      await em.flush();
      return { orgId: org.id, userId: user.id, email, role, session, connectionId: conn.id, accountId: account.id };
    },
    async addMember(tenant, role) {
      n += 1;
      const em = orm.em.fork();
      const email = `member-${n}-${Date.now()}@example.com`;
      const user = em.create(User, { organization: tenant.orgId, email, name: `member ${n}`, passwordHash: null });
      em.create(Membership, { organization: tenant.orgId, user, role });
      await em.flush();
      const session = await signIn(em, tenant.orgId, user.id);
      await em.flush();
      return { ...tenant, userId: user.id, email, role, session };
    },
    headersFor(as) {
      const h: Record<string, string> = {};
      const cookie = cookieHeaderOf(as);
      if (cookie) h.cookie = cookie;
      if (as && 'bearer' in as && as.bearer) h.authorization = `Bearer ${as.bearer}`;
      return h;
    },
    async gql(query, variables, as) {
      const res = await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...harness.headersFor(as ?? null) },
        body: JSON.stringify({ query, variables }),
      });
      const text = await res.text();
      let body: GqlResult['body'];
      try {
        body = JSON.parse(text);
      } catch {
        body = { errors: [{ message: text }] };
      }
      return { status: res.status, body: body as never, headers: res.headers };
    },
    ws(as, opts = {}) {
      const headers = harness.headersFor(as);
      // Node's WebSocket (undici) takes headers through a dispatcher-free init object.
      const WebSocketWithHeaders = class extends WebSocket {
        constructor(address: string | URL, protocols?: string | string[]) {
          super(address, { protocols, headers } as unknown as string[]);
        }
      };
      return createClient({
        url: harness.wsUrl,
        webSocketImpl: WebSocketWithHeaders,
        lazy: opts.lazy ?? true,
        retryAttempts: 0,
        connectionParams: as && 'bearer' in as && as.bearer ? { authorization: `Bearer ${as.bearer}` } : {},
      });
    },
    async close() {
      await nc.close().catch(() => {});
      await orm.close(true).catch(() => {});
      await sql.end().catch(() => {});
      await svc.stop();
    },
  };
  return harness;
}
