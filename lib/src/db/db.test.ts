// The data model against the real PostgreSQL: migrations, indexes, tenant columns, constraints, passwords.
import type { MikroORM } from '@mikro-orm/postgresql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Membership, NotificationLog, Organization, User } from './entities.ts';
import { freshDatabaseUrl } from './fixtures/test-database.ts';
import { migrationsList } from './migrations/index.ts';
import { migrate, openDatabase } from './orm.ts';
import { hashPassword, verifyPassword } from './passwords.ts';

let url: string;
let orm: MikroORM;

beforeAll(async () => {
  url = await freshDatabaseUrl('model');
  orm = await openDatabase(url);
});
afterAll(() => orm?.close(true));

const sql = <T>(q: string, params: unknown[] = []) => orm.em.getConnection().execute<T[]>(q, params);

describe('migrations', () => {
  it('apply once from several processes at once, and again is a no-op', async () => {
    const others = await Promise.all([openDatabase(url), openDatabase(url)]);
    try {
      const runs = await Promise.all([migrate(orm), ...others.map((o) => migrate(o))]);
      // Exactly one of the three applied the migrations; the others waited for the lock and found none pending.
      expect(runs.map((r) => r.length).sort()).toEqual([0, 0, migrationsList.length]);
    } finally {
      await Promise.all(others.map((o) => o.close(true)));
    }
    expect(await migrate(orm)).toEqual([]);
    const applied = await sql<{ name: string }>('select name from mikro_orm_migrations order by id');
    expect(applied.map((r) => r.name)).toEqual(migrationsList.map((m) => m.name));
  });

  it('match the entities: the committed migrations leave no schema difference to generate', async () => {
    const diff = await orm.schema.getUpdateSchemaSQL({ wrap: false });
    expect(diff.trim()).toBe('');
  });

  // `fences` holds the mesh's fencing tokens (clock ticks), which belong to no tenant.
  it('give every table its organization id', async () => {
    const tables = await sql<{ table_name: string; has_org: boolean }>(
      `select t.table_name, exists (select 1 from information_schema.columns c
         where c.table_schema = t.table_schema and c.table_name = t.table_name and c.column_name = 'organization_id') as has_org
       from information_schema.tables t
       where t.table_schema = 'public' and t.table_name not in ('mikro_orm_migrations', 'organizations', 'fences')`,
    );
    expect(tables.map((t) => t.table_name).sort()).toEqual(
      [
        'ad_accounts',
        'api_tokens',
        'connections',
        'jobs',
        'memberships',
        'notification_log',
        'outbox',
        'runs',
        'sessions',
        'users',
      ].sort(),
    );
    expect(tables.filter((t) => !t.has_org)).toEqual([]);
  });

  it('force row-level security on every tenant table', async () => {
    const rows = await sql<{ relname: string; relrowsecurity: boolean; relforcerowsecurity: boolean }>(
      `select c.relname, c.relrowsecurity, c.relforcerowsecurity from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind = 'r' and c.relname not in ('mikro_orm_migrations', 'fences')`,
    );
    expect(rows.length).toBe(11);
    expect(rows.filter((r) => !r.relrowsecurity || !r.relforcerowsecurity).map((r) => r.relname)).toEqual([]);
    const role = await sql<{ rolsuper: boolean; rolbypassrls: boolean }>(
      `select rolsuper, rolbypassrls from pg_roles where rolname = 'ppc_app'`,
    );
    expect(role).toEqual([{ rolsuper: false, rolbypassrls: false }]);
  });

  it('create the indexes the queries need', async () => {
    const rows = await sql<{ indexname: string; indexdef: string }>(
      `select indexname, indexdef from pg_indexes where schemaname = 'public'`,
    );
    const def = (name: string) => rows.find((r) => r.indexname === name)?.indexdef;
    expect(def('jobs_due_idx')).toMatch(/\(next_run_at\) WHERE enabled/);
    expect(def('outbox_unsent_idx')).toMatch(/\(id\) WHERE \(sent_at IS NULL\)/);
    expect(def('runs_job_idx')).toMatch(/\(job_id, queued_at\)/);
    expect(def('runs_org_status_idx')).toMatch(/\(organization_id, status\)/);
    expect(def('runs_job_slot_unique')).toMatch(/UNIQUE .*\(job_id, scheduled_for\)/);
    expect(def('notification_log_dedupe_key_unique')).toMatch(/UNIQUE .*\(dedupe_key\)/);
    expect(def('outbox_msg_id_unique')).toMatch(/UNIQUE .*\(msg_id\)/);
  });
});

describe('data model', () => {
  it('stores memberships with roles, refuses an unknown role, and dedupes notification log keys', async () => {
    const em = orm.em.fork();
    const org = em.create(Organization, { name: 'Acme' });
    const user = em.create(User, { organization: org, email: `a${Date.now()}@example.com`, name: 'A' });
    em.create(Membership, { organization: org, user, role: 'owner' });
    em.create(NotificationLog, {
      organization: org,
      dedupeKey: `run-failed.${org.id}`,
      kind: 'run-failed',
      recipient: 'a@example.com',
    });
    await em.flush();
    const m = await orm.em.fork().findOneOrFail(Membership, { user: user.id }, { populate: ['organization'] });
    expect(m.role).toBe('owner');
    expect(m.organization.name).toBe('Acme');
    await expect(
      sql(`insert into memberships (id, organization_id, user_id, role) values (gen_random_uuid(), ?, ?, 'admin')`, [
        org.id,
        user.id,
      ]),
    ).rejects.toThrow(/memberships_role_check/);
    const dup = orm.em.fork();
    dup.create(NotificationLog, {
      organization: org.id,
      dedupeKey: `run-failed.${org.id}`,
      kind: 'run-failed',
      recipient: 'a@example.com',
    });
    await expect(dup.flush()).rejects.toThrow(/notification_log_dedupe_key_unique/);
  });
});

describe('passwords', () => {
  it('hash with argon2id in PHC form, verify the right password and refuse a wrong one', async () => {
    const hash = await hashPassword('correct horse battery staple');
    expect(hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(hash).not.toContain('correct horse');
    expect(await verifyPassword('correct horse battery staple', hash)).toBe(true);
    expect(await verifyPassword('correct horse battery stapl', hash)).toBe(false);
    expect(await verifyPassword('x', 'not-a-hash')).toBe(false);
    // Salted: the same password hashes differently each time.
    expect(await hashPassword('correct horse battery staple')).not.toBe(hash);
  });
});
