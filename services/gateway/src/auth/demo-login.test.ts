import { type DemoPlatform, startDemoPlatform } from '@ppc/lib/ads';
import { Connection, Membership, Organization, User } from '@ppc/lib/db';
import { freePort } from '@ppc/lib/infra';
import { createLogger } from '@ppc/lib/log';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GatewayEnv, gatewayConfig } from '../config.ts';
import type { GatewayDeps } from '../context.ts';
import { type GatewayHarness, startGatewayHarness } from '../testing/harness.ts';
import { DEMO_ORGANIZATION, ensureDemoLogin } from './demo-login.ts';

const EMAIL = 'demo@example.com';
const PASSWORD = 'demo-password-1';

describe('the demo login (PPC_DEMO_LOGIN)', () => {
  let demo: DemoPlatform;
  let h: GatewayHarness;
  let deps: GatewayDeps;
  beforeAll(async () => {
    demo = await startDemoPlatform({ port: await freePort(), seed: 7 });
    h = await startGatewayHarness({ PPC_DEMO_LOGIN: `${EMAIL}:${PASSWORD}`, PPC_DEMO_PLATFORM_URL: demo.url });
    deps = {
      orm: h.orm,
      config: gatewayConfig(h.config as GatewayEnv),
      log: createLogger({ service: 'test', level: 'silent' }),
    } as GatewayDeps;
  }, 60_000);
  afterAll(async () => {
    await h?.close();
    await demo?.close();
  });

  async function state() {
    const em = h.orm.em.fork();
    const users = await em.find(User, { email: EMAIL });
    const memberships = await em.find(Membership, { user: { $in: users.map((u) => u.id) } });
    const orgs = await em.find(Organization, { name: DEMO_ORGANIZATION });
    const connections = await em.find(Connection, { organization: { $in: orgs.map((o) => o.id) }, platform: 'demo' });
    return { users, memberships, orgs, connections };
  }

  it('exists at start: the user signs in as owner of "Demo agency", which has a demo connection', async () => {
    const res = await h.gql<{ login: { role: string; organization: { name: string } } }>(
      'mutation($e: String!, $p: String!) { login(email: $e, password: $p) { role organization { name } } }',
      { e: EMAIL, p: PASSWORD },
    );
    expect(res.body.data?.login).toEqual({ role: 'owner', organization: { name: DEMO_ORGANIZATION } });
    const { users, connections } = await state();
    expect(users[0]?.passwordHash).toMatch(/^\$argon2id\$/);
    expect(connections).toHaveLength(1);
  });

  it('is idempotent: running it again (another replica, a restart) creates nothing new', async () => {
    const before = await state();
    await Promise.all([ensureDemoLogin(deps, `${EMAIL}:${PASSWORD}`), ensureDemoLogin(deps, `${EMAIL}:${PASSWORD}`)]);
    const after = await state();
    expect(after.users.map((u) => u.id)).toEqual(before.users.map((u) => u.id));
    expect(after.orgs.map((o) => o.id)).toEqual(before.orgs.map((o) => o.id));
    expect(after.memberships.map((m) => [m.id, m.role])).toEqual([[before.memberships[0]!.id, 'owner']]);
    expect(after.connections.map((c) => c.id)).toEqual(before.connections.map((c) => c.id));
  });
});
