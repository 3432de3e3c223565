import { ApiToken, Session, User } from '@ppc/lib/db';
import { createLogger } from '@ppc/lib/log';
import { waitFor } from '@ppc/lib/testing';
import type { FastifyRequest } from 'fastify';
import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Caller, GatewayDeps } from '../context.ts';
import { guardSubscription, sharedValidity } from '../graphql/index.ts';
import { type GatewayHarness, type Tenant, startGatewayHarness } from '../testing/harness.ts';
import { createAuthenticator } from './authenticator.ts';
import { LOCK_AFTER_FAILURES, LOGIN_REFUSED } from './login.ts';
import { hashSecret, SESSION_COOKIE } from './secrets.ts';

const PASSWORD = 'correct horse battery';
const ME = '{ me { id email name role scopes via expiresAt organization { id name role } } }';
const LOGIN = `mutation($email: String!, $password: String!) {
  login(email: $email, password: $password) { id email role via organization { id } }
}`;
const CREATE_TOKEN = `mutation($name: String!, $scopes: [ApiScope!]!, $days: Int) {
  createApiToken(name: $name, scopes: $scopes, expiresInDays: $days) {
    secret token { id name scopes prefix expiresAt revokedAt owner { id } }
  }
}`;
const REVOKE_TOKEN = 'mutation($id: ID!) { revokeApiToken(id: $id) { id revokedAt } }';
const SWITCH = 'mutation($id: ID!) { switchOrganization(id: $id) { organization { id } role } }';

type Errors = { message: string; extensions?: Record<string, unknown> }[] | undefined;
const codeOf = (errors: Errors) => errors?.[0]?.extensions?.code;

/** The `ppc_session` Set-Cookie header and its attributes, lower-cased names. */
function sessionCookie(headers: Headers): { value: string; attrs: Map<string, string> } | undefined {
  const raw = headers.getSetCookie().find((c) => c.startsWith(`${SESSION_COOKIE}=`));
  if (!raw) return undefined;
  const [pair, ...rest] = raw.split(';').map((s) => s.trim());
  const attrs = new Map(
    rest.map((a) => {
      const [k, ...v] = a.split('=');
      return [k!.toLowerCase(), v.join('=')] as [string, string];
    }),
  );
  return { value: pair!.slice(SESSION_COOKIE.length + 1), attrs };
}

/** Resolves with the close code when the server ends the connection, or 'connected' when it acknowledges it. */
function connectionOutcome(client: Client): Promise<number | 'connected'> {
  return new Promise((resolve) => {
    client.on('connected', () => resolve('connected'));
    client.on('closed', (e) => resolve((e as { code: number }).code));
  });
}

describe('auth: sessions, login, API tokens', () => {
  let h: GatewayHarness;
  let deps: GatewayDeps;
  beforeAll(async () => {
    // Many logins from one address in this file: the per-address login limit is tested in security.test.ts.
    h = await startGatewayHarness({ PPC_LOGIN_RATE_LIMIT: '1000' });
    deps = {
      orm: h.orm,
      sql: h.sql,
      config: h.config,
      log: createLogger({ service: 'test', level: 'silent' }),
    } as GatewayDeps;
  }, 60_000);
  afterAll(() => h?.close());

  const login = (email: string, password: string) => h.gql<{ login: { id: string } }>(LOGIN, { email, password });

  describe('login', () => {
    it('sets an httpOnly, SameSite=Lax session cookie for the session lifetime, and `me` works with it', async () => {
      const t = await h.seedTenant();
      const res = await login(t.email, PASSWORD);
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data?.login).toMatchObject({ id: t.userId, email: t.email, role: 'owner', via: 'session' });

      const cookie = sessionCookie(res.headers);
      expect(cookie?.value).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(cookie?.attrs.has('httponly')).toBe(true);
      expect(cookie?.attrs.get('samesite')).toBe('Lax');
      expect(cookie?.attrs.get('path')).toBe('/');
      expect(cookie?.attrs.get('max-age')).toBe(String(h.config.sessionTtlHours * 3600));
      // http://localhost public URL: a Secure cookie would never come back.
      expect(cookie?.attrs.has('secure')).toBe(false);

      const me = await h.gql<{ me: Record<string, unknown> }>(ME, {}, { cookie: cookie!.value });
      expect(me.body.data?.me).toMatchObject({
        id: t.userId,
        email: t.email,
        role: 'owner',
        via: 'session',
        scopes: ['read', 'write', 'run', 'admin'],
        organization: { id: t.orgId, role: 'owner' },
      });
      // Only the hash is stored.
      const row = await h.orm.em.fork().findOneOrFail(Session, { tokenHash: hashSecret(cookie!.value) });
      expect(row.user.id).toBe(t.userId);
      expect(row.expiresAt.getTime()).toBeGreaterThan(Date.now() + (h.config.sessionTtlHours * 3600 - 60) * 1000);
    });

    it('accepts the email in any letter case', async () => {
      const t = await h.seedTenant();
      const res = await login(t.email.toUpperCase(), PASSWORD);
      expect(res.body.data?.login.id).toBe(t.userId);
    });

    it('answers a wrong password and an unknown email with the same error', async () => {
      const t = await h.seedTenant();
      const wrong = await login(t.email, 'not the password');
      const unknown = await login(`nobody-${Date.now()}@example.com`, 'not the password');
      for (const res of [wrong, unknown]) {
        expect(res.body.data).toBeNull();
        expect(res.body.errors).toHaveLength(1);
        expect(res.body.errors?.[0]).toMatchObject({ message: LOGIN_REFUSED, extensions: { code: 'UNAUTHENTICATED' } });
        expect(sessionCookie(res.headers)).toBeUndefined();
      }
      expect(JSON.stringify(wrong.body)).toBe(JSON.stringify(unknown.body));
    });

    it(`locks the account after ${LOCK_AFTER_FAILURES} failures: even the right password is refused until the lock ends`, async () => {
      const t = await h.seedTenant();
      for (let i = 0; i < LOCK_AFTER_FAILURES; i += 1) {
        expect(codeOf((await login(t.email, `wrong ${i}`)).body.errors)).toBe('UNAUTHENTICATED');
      }
      const locked = await login(t.email, PASSWORD);
      expect(locked.body.errors?.[0]?.message).toBe(LOGIN_REFUSED);
      expect(sessionCookie(locked.headers)).toBeUndefined();

      const user = await h.orm.em.fork().findOneOrFail(User, { id: t.userId });
      expect(user.failedLogins).toBe(LOCK_AFTER_FAILURES);
      const lockMs = user.lockedUntil!.getTime() - Date.now();
      expect(lockMs).toBeGreaterThan(20_000);
      expect(lockMs).toBeLessThanOrEqual(30_000);

      // The lock has run out (moved into the past rather than waited for): the right password works and resets the count.
      await h.orm.em.fork().nativeUpdate(User, { id: t.userId }, { lockedUntil: new Date(Date.now() - 1000) });
      const ok = await login(t.email, PASSWORD);
      expect(ok.body.data?.login.id).toBe(t.userId);
      const after = await h.orm.em.fork().findOneOrFail(User, { id: t.userId });
      expect(after.failedLogins).toBe(0);
      expect(after.lockedUntil).toBeNull();
    });

    it('doubles the lock with every further failure', async () => {
      const t = await h.seedTenant();
      await h.orm.em
        .fork()
        .nativeUpdate(
          User,
          { id: t.userId },
          { failedLogins: LOCK_AFTER_FAILURES, lockedUntil: new Date(Date.now() - 1) },
        );
      await login(t.email, 'wrong again');
      const user = await h.orm.em.fork().findOneOrFail(User, { id: t.userId });
      expect(user.failedLogins).toBe(LOCK_AFTER_FAILURES + 1);
      const lockMs = user.lockedUntil!.getTime() - Date.now();
      expect(lockMs).toBeGreaterThan(50_000);
      expect(lockMs).toBeLessThanOrEqual(60_000);
    });

    it('validates its inputs, naming the field', async () => {
      const bad = await login('not-an-email', PASSWORD);
      expect(bad.body.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', field: 'email' } });
      const long = await login(`${'a'.repeat(320)}@example.com`, PASSWORD);
      expect(long.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'email' });
      const empty = await login('someone@example.com', '');
      expect(empty.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'password' });
    });
  });

  describe('sessions', () => {
    it('logout revokes the session: the old cookie is signed out everywhere', async () => {
      const t = await h.seedTenant();
      const res = await h.gql<{ logout: boolean }>('mutation { logout }', {}, t);
      expect(res.body.data?.logout).toBe(true);
      const cleared = sessionCookie(res.headers);
      expect(cleared?.value).toBe('');
      expect(cleared?.attrs.get('expires')).toMatch(/1970/);

      const row = await h.orm.em.fork().findOneOrFail(Session, { tokenHash: hashSecret(t.session) });
      expect(row.revokedAt).toBeInstanceOf(Date);
      expect((await h.gql(ME, {}, t)).body.data?.me).toBeNull();
      const mutation = await h.gql(CREATE_TOKEN, { name: 'x', scopes: ['read'] }, t);
      expect(codeOf(mutation.body.errors)).toBe('UNAUTHENTICATED');
      expect(await h.orm.em.fork().count(ApiToken, { organization: t.orgId })).toBe(0);
    });

    it('an expired session is signed out', async () => {
      const t = await h.seedTenant();
      await h.orm.em
        .fork()
        .nativeUpdate(Session, { tokenHash: hashSecret(t.session) }, { expiresAt: new Date(Date.now() - 1000) });
      expect((await h.gql(ME, {}, t)).body.data?.me).toBeNull();
      const res = await h.gql(SWITCH, { id: t.orgId }, t);
      expect(codeOf(res.body.errors)).toBe('UNAUTHENTICATED');
    });

    it('records when a session was last seen, at most once a minute', async () => {
      const t = await h.seedTenant();
      const em = h.orm.em.fork();
      const old = new Date(Date.now() - 5 * 60_000);
      await em.nativeUpdate(Session, { tokenHash: hashSecret(t.session) }, { lastSeenAt: old });
      await h.gql(ME, {}, t);
      const seen = await waitFor(async () => {
        const s = await h.orm.em.fork().findOneOrFail(Session, { tokenHash: hashSecret(t.session) });
        return s.lastSeenAt.getTime() > old.getTime() + 60_000 ? s.lastSeenAt : null;
      });
      await h.gql(ME, {}, t);
      await h.gql(ME, {}, t);
      const again = await h.orm.em.fork().findOneOrFail(Session, { tokenHash: hashSecret(t.session) });
      expect(again.lastSeenAt.getTime()).toBe(seen.getTime());
    });

    it('switchOrganization moves the session to another organization of the caller, and nowhere else', async () => {
      const a = await h.seedTenant();
      const b = await h.seedTenant();
      // a's user also becomes a viewer of b's organization.
      await h.orm.em
        .fork()
        .getConnection()
        .execute(
          `insert into memberships (id, organization_id, user_id, role, created_at) values (?, ?, ?, 'viewer', now())`,
          [crypto.randomUUID(), b.orgId, a.userId],
        );
      const orgs = await h.gql<{ organizations: { id: string; role: string }[] }>(
        '{ organizations { id name role } }',
        {},
        a,
      );
      expect(orgs.body.data?.organizations.map((o) => [o.id, o.role])).toEqual([
        [a.orgId, 'owner'],
        [b.orgId, 'viewer'],
      ]);

      const stranger = await h.seedTenant();
      const refused = await h.gql(SWITCH, { id: stranger.orgId }, a);
      expect(codeOf(refused.body.errors)).toBe('NOT_FOUND');

      const moved = await h.gql<{ switchOrganization: { organization: { id: string }; role: string } }>(
        SWITCH,
        { id: b.orgId },
        a,
      );
      expect(moved.body.data?.switchOrganization).toEqual({ organization: { id: b.orgId }, role: 'viewer' });
      const me = await h.gql<{ me: { organization: { id: string }; scopes: string[] } }>(ME, {}, a);
      expect(me.body.data?.me.organization.id).toBe(b.orgId);
      expect(me.body.data?.me.scopes).toEqual(['read']);
    });
  });

  describe('API tokens', () => {
    async function createToken(t: Tenant, scopes: string[], days?: number) {
      const res = await h.gql<{
        createApiToken: { secret: string; token: { id: string; prefix: string; scopes: string[] } };
      }>(CREATE_TOKEN, { name: 'ci', scopes, days }, t);
      expect(res.body.errors).toBeUndefined();
      return res.body.data!.createApiToken;
    }

    it('shows the secret once and stores only its hash', async () => {
      const t = await h.seedTenant();
      const created = await createToken(t, ['read', 'run'], 30);
      expect(created.secret).toMatch(/^ppct_[A-Za-z0-9_-]{43}$/);
      expect(created.secret.startsWith(created.token.prefix)).toBe(true);
      expect(created.token.scopes).toEqual(['read', 'run']);

      const [row] = await h.orm.em
        .fork()
        .getConnection()
        .execute<Record<string, unknown>[]>('select * from api_tokens where id = ?', [created.token.id]);
      expect(row?.token_hash).toBe(hashSecret(created.secret));
      const stored = JSON.stringify(row);
      expect(stored).not.toContain(created.secret);
      expect(stored).not.toContain(created.secret.slice(5));

      const list = await h.gql<{ apiTokens: Record<string, unknown>[] }>(
        '{ apiTokens { id name scopes prefix createdAt expiresAt lastUsedAt revokedAt owner { id email } } }',
        {},
        t,
      );
      expect(list.body.data?.apiTokens).toEqual([
        expect.objectContaining({ id: created.token.id, name: 'ci', owner: { id: t.userId, email: t.email } }),
      ]);
      expect(JSON.stringify(list.body)).not.toContain(created.secret);
    });

    it('a bearer token works over HTTP, with its scopes, and records its use', async () => {
      const t = await h.seedTenant();
      const { secret, token } = await createToken(t, ['read']);
      const me = await h.gql<{ me: { via: string; scopes: string[]; id: string } }>(ME, {}, { bearer: secret });
      expect(me.body.data?.me).toMatchObject({ id: t.userId, via: 'token', scopes: ['read'] });
      await waitFor(async () => (await h.orm.em.fork().findOneOrFail(ApiToken, { id: token.id })).lastUsedAt);
    });

    it('a read-only token is FORBIDDEN to mutate, and no token can mint tokens', async () => {
      const t = await h.seedTenant();
      const readOnly = await createToken(t, ['read']);
      const admin = await createToken(t, ['read', 'write', 'run', 'admin']);
      for (const bearer of [readOnly.secret, admin.secret]) {
        const res = await h.gql(CREATE_TOKEN, { name: 'child', scopes: ['read'] }, { bearer });
        expect(codeOf(res.body.errors)).toBe('FORBIDDEN');
      }
      const other = await createToken(t, ['read']);
      const revoke = await h.gql(REVOKE_TOKEN, { id: other.token.id }, { bearer: readOnly.secret });
      expect(codeOf(revoke.body.errors)).toBe('FORBIDDEN');
      expect(await h.orm.em.fork().count(ApiToken, { organization: t.orgId })).toBe(3);
    });

    it('refuses scopes beyond the caller role and invalid inputs, naming the field', async () => {
      const t = await h.seedTenant();
      const viewer = await h.addMember(t, 'viewer');
      const beyond = await h.gql(CREATE_TOKEN, { name: 'x', scopes: ['read', 'write'] }, viewer);
      expect(beyond.body.errors?.[0]).toMatchObject({ extensions: { code: 'FORBIDDEN', field: 'scopes' } });
      expect(beyond.body.errors?.[0]?.message).toMatch(/viewer/);
      const cases: [Record<string, unknown>, string][] = [
        [{ name: '', scopes: ['read'] }, 'name'],
        [{ name: 'x'.repeat(201), scopes: ['read'] }, 'name'],
        [{ name: 'x', scopes: [] }, 'scopes'],
        [{ name: 'x', scopes: ['read'], days: 0 }, 'expiresInDays'],
        [{ name: 'x', scopes: ['read'], days: 3651 }, 'expiresInDays'],
      ];
      for (const [vars, field] of cases) {
        const res = await h.gql(CREATE_TOKEN, vars, t);
        expect(res.body.errors?.[0]?.extensions, field).toMatchObject({ code: 'BAD_USER_INPUT', field });
      }
      expect(await h.orm.em.fork().count(ApiToken, { organization: t.orgId })).toBe(0);
    });

    it('revoked and expired tokens are UNAUTHENTICATED', async () => {
      const t = await h.seedTenant();
      const revoked = await createToken(t, ['read']);
      const expired = await createToken(t, ['read'], 1);
      const res = await h.gql<{ revokeApiToken: { revokedAt: string } }>(REVOKE_TOKEN, { id: revoked.token.id }, t);
      expect(res.body.data?.revokeApiToken.revokedAt).toBeTruthy();
      await h.orm.em
        .fork()
        .nativeUpdate(ApiToken, { id: expired.token.id }, { expiresAt: new Date(Date.now() - 1000) });
      for (const bearer of [revoked.secret, expired.secret]) {
        expect((await h.gql(ME, {}, { bearer })).body.data?.me).toBeNull();
        const orgs = await h.gql('{ organizations { id } }', {}, { bearer });
        expect(codeOf(orgs.body.errors)).toBe('UNAUTHENTICATED');
      }
    });

    it("revokeApiToken of another organization's token is NOT_FOUND and changes nothing", async () => {
      const a = await h.seedTenant();
      const b = await h.seedTenant();
      const theirs = await createToken(b, ['read']);
      const res = await h.gql(REVOKE_TOKEN, { id: theirs.token.id }, a);
      expect(codeOf(res.body.errors)).toBe('NOT_FOUND');
      const row = await h.orm.em.fork().findOneOrFail(ApiToken, { id: theirs.token.id });
      expect(row.revokedAt).toBeNull();
      expect((await h.gql(ME, {}, { bearer: theirs.secret })).body.data?.me).not.toBeNull();
      // And a's list does not show it.
      const list = await h.gql<{ apiTokens: unknown[] }>('{ apiTokens { id } }', {}, a);
      expect(list.body.data?.apiTokens).toEqual([]);
      const malformed = await h.gql(REVOKE_TOKEN, { id: 'not-a-uuid' }, a);
      expect(malformed.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'id' });
    });
  });

  describe('WebSocket', () => {
    const clients: Client[] = [];
    const ws = (as: Parameters<GatewayHarness['ws']>[0]) => {
      const c = h.ws(as, { lazy: false });
      clients.push(c);
      return c;
    };
    afterAll(async () => {
      for (const c of clients) await c.dispose();
    });

    it('accepts a session cookie on the upgrade and a bearer token in connection_init', async () => {
      const t = await h.seedTenant();
      const created = await h.gql<{ createApiToken: { secret: string } }>(
        CREATE_TOKEN,
        { name: 'ws', scopes: ['read'] },
        t,
      );
      expect(await connectionOutcome(ws(t))).toBe('connected');
      expect(await connectionOutcome(ws({ bearer: created.body.data!.createApiToken.secret }))).toBe('connected');
    });

    it('refuses unauthenticated, revoked and unknown credentials with close code 4401', async () => {
      const t = await h.seedTenant();
      await h.gql('mutation { logout }', {}, t);
      expect(await connectionOutcome(ws(null))).toBe(4401);
      expect(await connectionOutcome(ws(t))).toBe(4401);
      expect(await connectionOutcome(ws({ bearer: 'ppct_not-a-real-token' }))).toBe(4401);
    });

    it('ignores a session cookie sent from a foreign origin (cross-site WebSocket hijacking)', async () => {
      const t = await h.seedTenant();
      const auth = createAuthenticator(deps);
      const req = (origin?: string) =>
        ({
          headers: { host: '127.0.0.1:8080', ...(origin ? { origin } : {}) },
          cookies: { [SESSION_COOKIE]: t.session },
        }) as unknown as FastifyRequest;
      expect(await auth.fromConnectionInit({}, req())).not.toBeNull();
      expect(await auth.fromConnectionInit({}, req('http://127.0.0.1:8080'))).not.toBeNull();
      expect(await auth.fromConnectionInit({}, req('https://evil.example'))).toBeNull();
    });
  });

  describe('subscriptions end with their session', () => {
    async function callerOf(t: Tenant): Promise<Caller> {
      const req = { headers: {}, cookies: { [SESSION_COOKIE]: t.session } } as unknown as FastifyRequest;
      const caller = await createAuthenticator(deps).fromConnectionInit({}, req);
      expect(caller).not.toBeNull();
      return caller!;
    }

    /** A live source: yields a tick every 20 ms until released, recording that its `finally` ran. */
    function ticker() {
      const state = { released: false };
      async function* source() {
        try {
          for (let i = 0; ; i += 1) {
            await new Promise((r) => setTimeout(r, 20));
            yield i;
          }
        } finally {
          state.released = true;
        }
      }
      return { state, source: source() };
    }

    it('ends with UNAUTHENTICATED and releases the source when the session is revoked', async () => {
      const t = await h.seedTenant();
      const caller = await callerOf(t);
      const { state, source } = ticker();
      const guarded = guardSubscription(source, caller, sharedValidity(createAuthenticator(deps), 0), {
        checkEveryMs: 100,
      });
      expect((await guarded.next()).value).toBe(0);
      expect((await guarded.next()).value).toBe(1);

      await h.orm.em.fork().nativeUpdate(Session, { id: caller.sessionId! }, { revokedAt: new Date() });
      const ended = await (async () => {
        for (;;) await guarded.next();
      })().catch((err: { extensions?: Record<string, unknown> }) => err);
      expect(ended.extensions?.code).toBe('UNAUTHENTICATED');
      await waitFor(() => state.released, { what: "the source's return()" });
      expect(await guarded.next()).toEqual({ done: true, value: undefined });
    });

    it('ends at the moment the session expires, without waiting for a check', async () => {
      const t = await h.seedTenant();
      const caller = await callerOf(t);
      const { state, source } = ticker();
      const guarded = guardSubscription(
        source,
        { ...caller, expiresAt: new Date(Date.now() + 300) },
        sharedValidity(createAuthenticator(deps), 0),
        { checkEveryMs: 3_600_000 },
      );
      const started = Date.now();
      const ended = await (async () => {
        for (;;) await guarded.next();
      })().catch((err: { extensions?: Record<string, unknown> }) => err);
      expect(ended.extensions?.code).toBe('UNAUTHENTICATED');
      expect(Date.now() - started).toBeLessThan(5_000);
      await waitFor(() => state.released);
    });

    it('stays open while the session is valid and releases the source when the client stops', async () => {
      const t = await h.seedTenant();
      const caller = await callerOf(t);
      const { state, source } = ticker();
      const guarded = guardSubscription(source, caller, sharedValidity(createAuthenticator(deps), 0), {
        checkEveryMs: 30,
      });
      for (let i = 0; i < 10; i += 1) expect((await guarded.next()).value).toBe(i);
      await guarded.return?.();
      await waitFor(() => state.released);
    });
  });
});
