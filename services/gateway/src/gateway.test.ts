import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GatewayHarness, startGatewayHarness } from './testing/harness.ts';

// The gateway on a free port against the test run's real nats-server and PostgreSQL.
describe('gateway', () => {
  let h: GatewayHarness;
  beforeAll(async () => {
    h = await startGatewayHarness();
  }, 60_000);
  afterAll(() => h?.close());

  it('answers GraphQL over HTTP', async () => {
    const res = await h.gql<{ version: string }>('{ version }');
    expect(res.status).toBe(200);
    expect(res.body.data?.version).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('refuses a POST a cross-site form could send (text/plain, no preflight): CSRF prevention', async () => {
    const res = await fetch(`${h.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: JSON.stringify({ query: '{ version }' }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { errors: { message: string }[] }).errors[0]?.message).toMatch(
      /Cross-Site Request Forgery/,
    );
  });

  it('tells the client how long the gateway spent on the response (Server-Timing)', async () => {
    const res = await h.gql('{ version }');
    expect(res.headers.get('server-timing')).toMatch(/^app;dur=\d+\.\d{2}$/);
  });

  it('still serves the health routes', async () => {
    expect((await fetch(`${h.url}/healthz`)).status).toBe(200);
  });
});
