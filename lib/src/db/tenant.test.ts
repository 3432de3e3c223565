import type { MikroORM } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdAccount, Job, Membership, Organization, User } from './entities.ts';
import { freshDatabaseUrl } from './fixtures/test-database.ts';
import { seedAccount, type SeededAccount } from './fixtures/seed.ts';
import { migrate, openDatabase } from './orm.ts';
import { tenantEm } from './tenant.ts';

// Real PostgreSQL (the test run's embedded cluster): row-level security under the application role.
describe('tenant row-level security', () => {
  let orm: MikroORM;
  let a: SeededAccount & { userId: string };
  let b: SeededAccount & { userId: string };

  async function seedTenant(name: string) {
    const seeded = await seedAccount(orm, { orgName: name });
    const em = orm.em.fork();
    const user = em.create(User, { organization: seeded.orgId, email: `${name}@example.com`, name });
    em.create(Membership, { organization: seeded.orgId, user, role: 'owner' });
    em.create(Job, {
      organization: seeded.orgId,
      account: seeded.accountId,
      name: `${name} job`,
      params: {},
      output: { kind: 'csv' },
      notify: {},
    });
    await em.flush();
    return { ...seeded, userId: user.id };
  }

  beforeAll(async () => {
    orm = await openDatabase(await freshDatabaseUrl('tenant_rls'));
    await migrate(orm);
    a = await seedTenant('alpha');
    b = await seedTenant('beta');
  });
  afterAll(() => orm?.close(true));

  it('shows the application role only its own organization, even to a query without an organization condition', async () => {
    const em = tenantEm(orm, { organizationId: a.orgId, userId: a.userId });
    expect((await em.find(Job, {})).map((j) => j.name)).toEqual(['alpha job']);
    expect((await em.find(AdAccount, {})).map((x) => x.id)).toEqual([a.accountId]);
    expect((await em.find(Organization, {})).map((o) => o.name)).toEqual(['alpha']);
    expect((await em.find(User, {})).map((u) => u.email)).toEqual(['alpha@example.com']);
    const raw = await em.execute<{ n: string }[]>('select count(*)::text as n from jobs');
    expect(raw[0]?.n).toBe('1');
  });

  it('refuses to write a row into another organization', async () => {
    const em = tenantEm(orm, { organizationId: a.orgId, userId: a.userId });
    em.create(Job, {
      organization: b.orgId,
      account: b.accountId,
      name: 'smuggled',
      params: {},
      output: { kind: 'csv' },
      notify: {},
    });
    await expect(em.flush()).rejects.toThrow(/row-level security/);
    const updated = await tenantEm(orm, { organizationId: a.orgId, userId: a.userId }).execute(
      `update jobs set name = 'hijacked' where organization_id = ? returning id`,
      [b.orgId],
    );
    expect(updated).toEqual([]);
    expect((await orm.em.fork().findOneOrFail(Job, { organization: b.orgId })).name).toBe('beta job');
  });

  it('sees nothing without an organization in the session', async () => {
    const em = orm.em.fork({ session: { role: 'ppc_app' } });
    expect(await em.count(Job, {})).toBe(0);
  });

  it('leaves the owner role (migrations, the system service) every row', async () => {
    expect(await orm.em.fork().count(Job, {})).toBe(2);
  });
});
