import { Migration } from '@mikro-orm/migrations';

/**
 * Row-level security (policies declared on the entities, see `tenantRls` in entities.ts) and the application
 * role they name. The role and its grants are hand-written: MikroORM manages policies, not roles.
 */
export class Migration20261123145506_tenant_rls extends Migration {
  override name = 'Migration20261123145506_tenant_rls';

  override up(): void | Promise<void> {
    // Roles are cluster-wide: databases sharing a cluster (tests, staging) create it once; a race is harmless.
    this.addSql(`do $$ begin
  if not exists (select from pg_roles where rolname = 'ppc_app') then create role ppc_app nologin; end if;
exception when duplicate_object or unique_violation then null;
end $$;`);
    // The migrating role (owner) may `set local role ppc_app` for tenant work (tenantSession in tenant.ts).
    this.addSql(`grant ppc_app to current_user;`);
    this.addSql(`grant usage on schema public to ppc_app;`);
    this.addSql(`grant select, insert, update, delete on all tables in schema public to ppc_app;`);
    this.addSql(`grant usage, select on all sequences in schema public to ppc_app;`);
    this.addSql(`alter default privileges in schema public grant select, insert, update, delete on tables to ppc_app;`);
    this.addSql(`alter default privileges in schema public grant usage, select on sequences to ppc_app;`);

    this.addSql(`alter table "organizations" enable row level security;`);
    this.addSql(`alter table "organizations" force row level security;`);
    this.addSql(
      `create policy "tenant_isolation" on "organizations" to "ppc_app" using (id = nullif(current_setting('ppc.organization_id', true), '')::uuid or exists (select 1 from memberships m where m.organization_id = organizations.id and m.user_id = nullif(current_setting('ppc.user_id', true), '')::uuid)) with check (id = nullif(current_setting('ppc.organization_id', true), '')::uuid or exists (select 1 from memberships m where m.organization_id = organizations.id and m.user_id = nullif(current_setting('ppc.user_id', true), '')::uuid));`,
    );
    this.addSql(
      `create policy "service_access" on "organizations" using (current_user <> 'ppc_app') with check (current_user <> 'ppc_app');`,
    );

    this.addSql(`alter table "users" enable row level security;`);
    this.addSql(`alter table "users" force row level security;`);
    this.addSql(
      `create policy "tenant_isolation" on "users" to "ppc_app" using (id = nullif(current_setting('ppc.user_id', true), '')::uuid or exists (select 1 from memberships m where m.user_id = users.id and m.organization_id = nullif(current_setting('ppc.organization_id', true), '')::uuid)) with check (id = nullif(current_setting('ppc.user_id', true), '')::uuid or exists (select 1 from memberships m where m.user_id = users.id and m.organization_id = nullif(current_setting('ppc.organization_id', true), '')::uuid));`,
    );
    this.addSql(
      `create policy "service_access" on "users" using (current_user <> 'ppc_app') with check (current_user <> 'ppc_app');`,
    );

    this.addSql(`alter table "sessions" enable row level security;`);
    this.addSql(`alter table "sessions" force row level security;`);
    this.addSql(
      `create policy "tenant_isolation" on "sessions" to "ppc_app" using (organization_id = nullif(current_setting('ppc.organization_id', true), '')::uuid) with check (organization_id = nullif(current_setting('ppc.organization_id', true), '')::uuid);`,
    );
    this.addSql(
      `create policy "service_access" on "sessions" using (current_user <> 'ppc_app') with check (current_user <> 'ppc_app');`,
    );

    this.addSql(`alter table "memberships" enable row level security;`);
    this.addSql(`alter table "memberships" force row level security;`);
    this.addSql(
      `create policy "tenant_isolation" on "memberships" to "ppc_app" using (organization_id = nullif(current_setting('ppc.organization_id', true), '')::uuid or user_id = nullif(current_setting('ppc.user_id', true), '')::uuid) with check (organization_id = nullif(current_setting('ppc.organization_id', true), '')::uuid or user_id = nullif(current_setting('ppc.user_id', true), '')::uuid);`,
    );
    this.addSql(
      `create policy "service_access" on "memberships" using (current_user <> 'ppc_app') with check (current_user <> 'ppc_app');`,
    );

    this.addSql(`alter table "connections" enable row level security;`);
    this.addSql(`alter table "connections" force row level security;`);
    this.addSql(
      `create policy "tenant_isolation" on "connections" to "ppc_app" using (organization_id = nullif(current_setting('ppc.organization_id', true), '')::uuid) with check (organization_id = nullif(current_setting('ppc.organization_id', true), '')::uuid);`,
    );
    this.addSql(
      `create policy "service_access" on "connections" using (current_user <> 'ppc_app') with check (current_user <> 'ppc_app');`,
    );

    this.addSql(`alter table "ad_accounts" enable row level security;`);
    this.addSql(`alter table "ad_accounts" force row level security;`);
    this.addSql(
      `create policy "tenant_isolation" on "ad_accounts" to "ppc_app" using (organization_id = nullif(current_setting('ppc.organization_id', true), '')::uuid) with check (organization_id = nullif(current_setting('ppc.organization_id', true), '')::uuid);`,
    );
    this.addSql(
      `create policy "service_access" on "ad_accounts" using (current_user <> 'ppc_app') with check (current_user <> 'ppc_app');`,
    );

    this.addSql(`alter table "jobs" enable row level security;`);
    this.addSql(`alter table "jobs" force row level security;`);
    this.addSql(
      `create policy "tenant_isolation" on "jobs" to "ppc_app" using (organization_id = nullif(current_setting('ppc.organization_id', true), '')::uuid) with check (organization_id = nullif(current_setting('ppc.organization_id', true), '')::uuid);`,
    );
    this.addSql(
      `create policy "service_access" on "jobs" using (current_user <> 'ppc_app') with check (current_user <> 'ppc_app');`,
    );

    this.addSql(`create index "runs_org_queued_idx" on "runs" ("organization_id", "queued_at" desc, "id" desc);`);
    this.addSql(`alter table "runs" enable row level security;`);
    this.addSql(`alter table "runs" force row level security;`);
    this.addSql(
      `create policy "tenant_isolation" on "runs" to "ppc_app" using (organization_id = nullif(current_setting('ppc.organization_id', true), '')::uuid) with check (organization_id = nullif(current_setting('ppc.organization_id', true), '')::uuid);`,
    );
    this.addSql(
      `create policy "service_access" on "runs" using (current_user <> 'ppc_app') with check (current_user <> 'ppc_app');`,
    );

    this.addSql(`alter table "outbox" enable row level security;`);
    this.addSql(`alter table "outbox" force row level security;`);
    this.addSql(
      `create policy "tenant_isolation" on "outbox" to "ppc_app" using (organization_id = nullif(current_setting('ppc.organization_id', true), '')::uuid) with check (organization_id = nullif(current_setting('ppc.organization_id', true), '')::uuid);`,
    );
    this.addSql(
      `create policy "service_access" on "outbox" using (current_user <> 'ppc_app') with check (current_user <> 'ppc_app');`,
    );

    this.addSql(`alter table "notification_log" enable row level security;`);
    this.addSql(`alter table "notification_log" force row level security;`);
    this.addSql(
      `create policy "tenant_isolation" on "notification_log" to "ppc_app" using (organization_id = nullif(current_setting('ppc.organization_id', true), '')::uuid) with check (organization_id = nullif(current_setting('ppc.organization_id', true), '')::uuid);`,
    );
    this.addSql(
      `create policy "service_access" on "notification_log" using (current_user <> 'ppc_app') with check (current_user <> 'ppc_app');`,
    );

    this.addSql(`alter table "api_tokens" enable row level security;`);
    this.addSql(`alter table "api_tokens" force row level security;`);
    this.addSql(
      `create policy "tenant_isolation" on "api_tokens" to "ppc_app" using (organization_id = nullif(current_setting('ppc.organization_id', true), '')::uuid) with check (organization_id = nullif(current_setting('ppc.organization_id', true), '')::uuid);`,
    );
    this.addSql(
      `create policy "service_access" on "api_tokens" using (current_user <> 'ppc_app') with check (current_user <> 'ppc_app');`,
    );
  }

  override down(): void | Promise<void> {
    this.addSql(`drop policy "tenant_isolation" on "ad_accounts";`);
    this.addSql(`drop policy "service_access" on "ad_accounts";`);

    this.addSql(`drop policy "tenant_isolation" on "api_tokens";`);
    this.addSql(`drop policy "service_access" on "api_tokens";`);

    this.addSql(`drop policy "tenant_isolation" on "connections";`);
    this.addSql(`drop policy "service_access" on "connections";`);

    this.addSql(`drop policy "tenant_isolation" on "jobs";`);
    this.addSql(`drop policy "service_access" on "jobs";`);

    this.addSql(`drop policy "tenant_isolation" on "memberships";`);
    this.addSql(`drop policy "service_access" on "memberships";`);

    this.addSql(`drop policy "tenant_isolation" on "notification_log";`);
    this.addSql(`drop policy "service_access" on "notification_log";`);

    this.addSql(`drop policy "tenant_isolation" on "organizations";`);
    this.addSql(`drop policy "service_access" on "organizations";`);

    this.addSql(`drop policy "tenant_isolation" on "outbox";`);
    this.addSql(`drop policy "service_access" on "outbox";`);

    this.addSql(`drop policy "tenant_isolation" on "runs";`);
    this.addSql(`drop policy "service_access" on "runs";`);

    this.addSql(`drop policy "tenant_isolation" on "sessions";`);
    this.addSql(`drop policy "service_access" on "sessions";`);

    this.addSql(`drop policy "tenant_isolation" on "users";`);
    this.addSql(`drop policy "service_access" on "users";`);

    this.addSql(`alter table "ad_accounts" no force row level security;`);
    this.addSql(`alter table "ad_accounts" disable row level security;`);

    this.addSql(`alter table "api_tokens" no force row level security;`);
    this.addSql(`alter table "api_tokens" disable row level security;`);

    this.addSql(`alter table "connections" no force row level security;`);
    this.addSql(`alter table "connections" disable row level security;`);

    this.addSql(`alter table "jobs" no force row level security;`);
    this.addSql(`alter table "jobs" disable row level security;`);

    this.addSql(`alter table "memberships" no force row level security;`);
    this.addSql(`alter table "memberships" disable row level security;`);

    this.addSql(`alter table "notification_log" no force row level security;`);
    this.addSql(`alter table "notification_log" disable row level security;`);

    this.addSql(`alter table "organizations" no force row level security;`);
    this.addSql(`alter table "organizations" disable row level security;`);

    this.addSql(`alter table "outbox" no force row level security;`);
    this.addSql(`alter table "outbox" disable row level security;`);

    this.addSql(`drop index "runs_org_queued_idx";`);
    this.addSql(`alter table "runs" no force row level security;`);
    this.addSql(`alter table "runs" disable row level security;`);

    this.addSql(`alter table "sessions" no force row level security;`);
    this.addSql(`alter table "sessions" disable row level security;`);

    this.addSql(`alter table "users" no force row level security;`);
    this.addSql(`alter table "users" disable row level security;`);
  }
}
