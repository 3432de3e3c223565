import { createLogger } from '@ppc/lib/log';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayDeps } from '../context.ts';
import { type GatewayHarness, startGatewayHarness } from '../testing/harness.ts';
import { createAuthenticator } from './authenticator.ts';
import { registerSecurity } from './security.ts';

const LOGIN = 'mutation($email: String!, $password: String!) { login(email: $email, password: $password) { id } }';
const LOGIN_LIMIT = 3;
const REQUEST_LIMIT = 30;
const BODY_LIMIT = 4096;

type Body = { data?: unknown; errors?: { message: string; extensions?: Record<string, unknown> }[] };

// One address (127.0.0.1) for every request of this file: unauthenticated requests share one bucket of
// REQUEST_LIMIT a minute, so the tests that exhaust a limit use their own sessions or run last.
describe('gateway safety: headers, body size, rate limits, error hiding', () => {
  let h: GatewayHarness;
  beforeAll(async () => {
    h = await startGatewayHarness({
      PPC_LOGIN_RATE_LIMIT: String(LOGIN_LIMIT),
      PPC_RATE_LIMIT: String(REQUEST_LIMIT),
      PPC_GATEWAY_BODY_LIMIT: String(BODY_LIMIT),
    });
  }, 60_000);
  afterAll(() => h?.close());

  it('sends security headers, with a strict content security policy on the API', async () => {
    const res = await h.gql('{ version }');
    expect(res.status).toBe(200);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('x-frame-options')).toBe('SAMEORIGIN');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    expect(res.headers.get('cross-origin-opener-policy')).toBe('same-origin');
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("script-src 'self';");
    expect(csp).not.toContain('unpkg');
    // Plain http (the test's public URL): no HSTS, no upgrade of every request.
    expect(res.headers.get('strict-transport-security')).toBeNull();
    expect(csp).not.toContain('upgrade-insecure-requests');
  });

  it("relaxes the policy for GraphiQL only, which loads its assets from unpkg's CDN", async () => {
    const res = await fetch(`${h.url}/graphiql`);
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("script-src 'self' https://unpkg.com");
    expect(csp).toContain('https://unpkg.com');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('refuses a body over the limit with 413 before parsing it', async () => {
    const res = await fetch(`${h.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: `{ version }${' '.repeat(BODY_LIMIT * 2)}` }),
    });
    expect(res.status).toBe(413);
    const body = (await res.json()) as Body;
    expect(body.errors?.[0]?.extensions?.code).toBe('FST_ERR_CTP_BODY_TOO_LARGE');
  });

  it(`answers the login after ${LOGIN_LIMIT} a minute from one address with 429 RATE_LIMITED, even with the right password`, async () => {
    const t = await h.seedTenant();
    for (let i = 0; i < LOGIN_LIMIT; i += 1) {
      const res = await h.gql<Body>(LOGIN, { email: `nobody${i}@example.com`, password: 'whatever' });
      expect(res.status).toBe(200);
      expect(res.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    }
    const limited = await h.gql(LOGIN, { email: t.email, password: 'correct horse battery' });
    expect(limited.status).toBe(429);
    expect(limited.body.data).toBeNull();
    expect(limited.body.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
    expect(limited.body.errors?.[0]?.message).toMatch(/too many login attempts/);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(limited.headers.getSetCookie()).toEqual([]);
    // Only logins are limited this tightly.
    expect((await h.gql('{ version }')).status).toBe(200);
  });

  it(`limits every caller to ${REQUEST_LIMIT} requests a minute, each session in its own bucket`, async () => {
    const busy = await h.seedTenant();
    const other = await h.seedTenant();
    for (let i = 0; i < REQUEST_LIMIT; i += 1) expect((await h.gql('{ version }', {}, busy)).status).toBe(200);
    const limited = await h.gql('{ version }', {}, busy);
    expect(limited.status).toBe(429);
    expect(limited.body.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
    expect((await h.gql('{ version }', {}, other)).status).toBe(200);
  });

  it('reports a resolver failure as "internal error", without a stack, SQL or table names', async () => {
    const t = await h.seedTenant();
    const conn = h.orm.em.fork().getConnection();
    // A real failure inside a resolver: the table it reads is gone.
    await conn.execute('alter table api_tokens rename to api_tokens_gone');
    try {
      const res = await h.gql<Body>('{ apiTokens { id name } }', {}, t);
      expect(res.body.errors).toEqual([
        { message: 'internal error', path: ['apiTokens'], extensions: { code: 'INTERNAL_SERVER_ERROR' } },
      ]);
      const text = JSON.stringify(res.body);
      expect(text).not.toMatch(/api_tokens|relation|select|\.ts:\d+|\n\s+at /);
    } finally {
      await conn.execute('alter table api_tokens_gone rename to api_tokens');
    }
  });

  it('hides internal errors of plain routes too, and keeps client errors readable', async () => {
    const app = Fastify();
    const deps = {
      config: h.config,
      log: createLogger({ service: 'test', level: 'silent' }),
      orm: h.orm,
    } as unknown as GatewayDeps;
    await registerSecurity(app, deps, createAuthenticator(deps));
    app.get('/boom', async () => {
      throw new Error('connect ECONNREFUSED 10.0.0.7:5432 at /srv/app/secret.ts:12');
    });
    app.get('/teapot', async () => {
      throw Object.assign(new Error('you asked for tea'), { statusCode: 418, code: 'TEAPOT' });
    });
    try {
      const boom = await app.inject({ url: '/boom' });
      expect(boom.statusCode).toBe(500);
      expect(boom.json()).toEqual({
        data: null,
        errors: [{ message: 'internal error', extensions: { code: 'INTERNAL_SERVER_ERROR' } }],
      });
      expect(boom.body).not.toMatch(/ECONNREFUSED|secret\.ts/);
      const teapot = await app.inject({ url: '/teapot' });
      expect(teapot.statusCode).toBe(418);
      expect(teapot.json().errors[0]).toEqual({ message: 'you asked for tea', extensions: { code: 'TEAPOT' } });
      expect(boom.headers['x-content-type-options']).toBe('nosniff');
    } finally {
      await app.close();
    }
  });
});
