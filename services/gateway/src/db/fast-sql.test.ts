import { Job, migrate, openDatabase } from '@ppc/lib/db';
import type { MikroORM } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedAccount, type SeededAccount } from '../../../../lib/src/db/fixtures/seed.ts';
import { freshDatabaseUrl } from '../../../../lib/src/db/fixtures/test-database.ts';
import { FastSql } from './fast-sql.ts';

// Real PostgreSQL (the test run's): the hot-path pool enforces row-level security in one round trip per statement.
describe('FastSql', () => {
  let orm: MikroORM;
  let sql: FastSql;
  let a: SeededAccount;
  let b: SeededAccount;
  const userId = '00000000-0000-4000-8000-000000000001';

  beforeAll(async () => {
    const url = await freshDatabaseUrl('fast_sql');
    orm = await openDatabase(url);
    await migrate(orm);
    a = await seedAccount(orm, { orgName: 'alpha' });
    b = await seedAccount(orm, { orgName: 'beta' });
    const em = orm.em.fork();
    for (const s of [a, b])
      em.create(Job, {
        organization: s.orgId,
        account: s.accountId,
        name: `job of ${s.orgId}`,
        params: {},
        output: { kind: 'csv' },
        notify: {},
      });
    await em.flush();
    sql = new FastSql(url, { max: 1 }); // one connection: every statement reuses what was prepared on it
  });
  afterAll(async () => {
    await sql?.end();
    await orm?.close(true);
  });

  const JOBS = 'select name from jobs where true and (? = ? or true) order by name';

  it('shows a tenant statement only its own organization, even without an organization condition', async () => {
    const rows = await sql.tenantQuery<{ name: string }>({ organizationId: a.orgId, userId }, JOBS, ['x', 'x']);
    expect(rows.map((r) => r.name)).toEqual([`job of ${a.orgId}`]);
    const again = await sql.tenantQuery<{ name: string }>({ organizationId: b.orgId, userId }, JOBS, ['y', 'z']);
    expect(again.map((r) => r.name)).toEqual([`job of ${b.orgId}`]);
  });

  it('runs as the application role, and the settings do not outlive the statement', async () => {
    const [who] = await sql.tenantQuery<{ role: string }>(
      { organizationId: a.orgId, userId },
      'select current_user as role',
    );
    expect(who?.role).toBe('ppc_app');
    const [after] = await sql.query<{ role: string; org: string | null }>(
      "select current_user as role, nullif(current_setting('ppc.organization_id', true), '') as org",
    );
    expect(after?.role).not.toBe('ppc_app');
    expect(after?.org).toBeNull();
  });

  it('passes arguments as literals that cannot break out of the statement', async () => {
    const evil = "x'); delete from jobs; --";
    const [row] = await sql.tenantQuery<{ v: string }>({ organizationId: a.orgId, userId }, 'select ?::text as v', [
      evil,
    ]);
    expect(row?.v).toBe(evil);
    expect(await orm.em.fork().count(Job, {})).toBe(2);
  });

  it('recovers when a statement prepared on the connection fails, and refuses scopes that are not ids', async () => {
    const scope = { organizationId: a.orgId, userId };
    await expect(sql.tenantQuery(scope, 'select 1 / ?::int as q', [0])).rejects.toThrow(/division by zero/);
    expect(await sql.tenantQuery<{ q: number }>(scope, 'select 1 / ?::int as q', [1])).toEqual([{ q: 1 }]);
    await expect(sql.tenantQuery({ organizationId: "x' or true", userId }, 'select 1')).rejects.toThrow(TypeError);
  });
});
