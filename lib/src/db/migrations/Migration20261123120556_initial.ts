import { Migration } from '@mikro-orm/migrations';

export class Migration20261123120556_initial extends Migration {
  override name = 'Migration20261123120556_initial';

  override up(): void | Promise<void> {
    this.addSql(
      `create table "organizations" ("id" uuid not null, "name" varchar(200) not null, "created_at" timestamptz not null default now(), primary key ("id"));`,
    );

    this.addSql(
      `create table "users" ("id" uuid not null, "organization_id" uuid not null, "email" varchar(320) not null, "name" varchar(200) not null, "password_hash" varchar(300) null, "created_at" timestamptz not null default now(), primary key ("id"));`,
    );
    this.addSql(`alter table "users" add constraint "users_email_unique" unique ("email");`);

    this.addSql(
      `create table "memberships" ("id" uuid not null, "organization_id" uuid not null, "user_id" uuid not null, "role" text not null, "created_at" timestamptz not null default now(), primary key ("id"));`,
    );
    this.addSql(`create index "memberships_user_id_index" on "memberships" ("user_id");`);
    this.addSql(
      `alter table "memberships" add constraint "memberships_organization_id_user_id_unique" unique ("organization_id", "user_id");`,
    );

    this.addSql(
      `create table "connections" ("id" uuid not null, "organization_id" uuid not null, "owner_id" uuid null, "platform" text not null, "label" varchar(300) not null, "sealed_refresh_token" text not null, "key_id" varchar(64) not null, "status" text not null default 'active', "last_error" text null, "last_error_at" timestamptz null, "created_at" timestamptz not null default now(), "updated_at" timestamptz not null default now(), primary key ("id"));`,
    );
    this.addSql(`create index "connections_organization_id_index" on "connections" ("organization_id");`);
    this.addSql(`create index "connections_key_id_index" on "connections" ("key_id");`);

    this.addSql(
      `create table "ad_accounts" ("id" uuid not null, "organization_id" uuid not null, "connection_id" uuid not null, "platform" text not null, "platform_account_id" varchar(100) not null, "name" varchar(300) not null, "currency" varchar(3) not null, "time_zone" varchar(64) not null, "status" text not null default 'enabled', "last_synced_at" timestamptz null, "created_at" timestamptz not null default now(), "updated_at" timestamptz not null default now(), primary key ("id"));`,
    );
    this.addSql(`create index "ad_accounts_organization_id_index" on "ad_accounts" ("organization_id");`);
    this.addSql(
      `alter table "ad_accounts" add constraint "ad_accounts_connection_id_platform_account_id_unique" unique ("connection_id", "platform_account_id");`,
    );

    this.addSql(
      `create table "jobs" ("id" uuid not null, "organization_id" uuid not null, "account_id" uuid not null, "created_by_id" uuid null, "name" varchar(200) not null, "kind" text not null default 'report', "report_type" varchar(128) null, "params" jsonb not null, "output" jsonb not null, "cron" varchar(100) null, "time_zone" varchar(64) not null default 'UTC', "enabled" boolean not null default true, "next_run_at" timestamptz null, "notify" jsonb not null, "disabled_reason" text null, "last_success_at" timestamptz null, "mean_duration_ms" int null, "created_at" timestamptz not null default now(), "updated_at" timestamptz not null default now(), primary key ("id"));`,
    );
    this.addSql(`create index "jobs_due_idx" on "jobs" ("next_run_at") where enabled;`);
    this.addSql(`create index "jobs_organization_id_index" on "jobs" ("organization_id");`);
    this.addSql(`create index "jobs_account_id_index" on "jobs" ("account_id");`);

    this.addSql(
      `create table "runs" ("id" uuid not null, "organization_id" uuid not null, "job_id" uuid not null, "trigger" text not null, "scheduled_for" timestamptz null, "status" text not null default 'queued', "attempt" int not null default 1, "progress" double precision not null default 0, "phase" varchar(32) null, "timings" jsonb null, "worker_instance" varchar(200) null, "output_links" jsonb null, "row_counts" jsonb null, "error_code" varchar(100) null, "error_message" text null, "last_event_seq" bigint not null default '0', "queued_at" timestamptz not null default now(), "started_at" timestamptz null, "finished_at" timestamptz null, primary key ("id"));`,
    );
    this.addSql(`create index "runs_job_idx" on "runs" ("job_id", "queued_at");`);
    this.addSql(`create index "runs_org_status_idx" on "runs" ("organization_id", "status");`);
    this.addSql(`alter table "runs" add constraint "runs_job_slot_unique" unique ("job_id", "scheduled_for");`);

    this.addSql(
      `create table "outbox" ("id" bigserial primary key, "organization_id" uuid not null, "run_id" uuid null, "type" varchar(100) not null, "subject" varchar(300) not null, "msg_id" varchar(300) not null, "body" jsonb not null, "traceparent" varchar(100) null, "created_at" timestamptz not null default now(), "sent_at" timestamptz null, "attempts" int not null default 0, "last_error" text null);`,
    );
    this.addSql(`alter table "outbox" add constraint "outbox_msg_id_unique" unique ("msg_id");`);
    this.addSql(`create index "outbox_unsent_idx" on "outbox" ("id") where sent_at is null;`);

    this.addSql(
      `create table "notification_log" ("id" uuid not null, "organization_id" uuid not null, "dedupe_key" varchar(300) not null, "kind" varchar(50) not null, "recipient" varchar(320) not null, "run_id" uuid null, "job_id" uuid null, "status" text not null default 'pending', "error" text null, "created_at" timestamptz not null default now(), "sent_at" timestamptz null, primary key ("id"));`,
    );
    this.addSql(
      `alter table "notification_log" add constraint "notification_log_dedupe_key_unique" unique ("dedupe_key");`,
    );
    this.addSql(
      `create index "notification_log_organization_id_created_at_index" on "notification_log" ("organization_id", "created_at");`,
    );

    this.addSql(
      `alter table "users" add constraint "users_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id");`,
    );

    this.addSql(
      `alter table "memberships" add constraint "memberships_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id");`,
    );
    this.addSql(
      `alter table "memberships" add constraint "memberships_user_id_foreign" foreign key ("user_id") references "users" ("id");`,
    );
    this.addSql(
      `alter table "memberships" add constraint "memberships_role_check" check ("role" in ('owner', 'member', 'viewer'));`,
    );

    this.addSql(
      `alter table "connections" add constraint "connections_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id");`,
    );
    this.addSql(
      `alter table "connections" add constraint "connections_owner_id_foreign" foreign key ("owner_id") references "users" ("id") on delete set null;`,
    );
    this.addSql(
      `alter table "connections" add constraint "connections_platform_check" check ("platform" in ('demo', 'google-ads'));`,
    );
    this.addSql(
      `alter table "connections" add constraint "connections_status_check" check ("status" in ('active', 'revoked', 'error'));`,
    );

    this.addSql(
      `alter table "ad_accounts" add constraint "ad_accounts_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id");`,
    );
    this.addSql(
      `alter table "ad_accounts" add constraint "ad_accounts_connection_id_foreign" foreign key ("connection_id") references "connections" ("id");`,
    );
    this.addSql(
      `alter table "ad_accounts" add constraint "ad_accounts_platform_check" check ("platform" in ('demo', 'google-ads'));`,
    );
    this.addSql(
      `alter table "ad_accounts" add constraint "ad_accounts_status_check" check ("status" in ('enabled', 'disabled', 'removed'));`,
    );

    this.addSql(
      `alter table "jobs" add constraint "jobs_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id");`,
    );
    this.addSql(
      `alter table "jobs" add constraint "jobs_account_id_foreign" foreign key ("account_id") references "ad_accounts" ("id");`,
    );
    this.addSql(
      `alter table "jobs" add constraint "jobs_created_by_id_foreign" foreign key ("created_by_id") references "users" ("id") on delete set null;`,
    );
    this.addSql(`alter table "jobs" add constraint "jobs_kind_check" check ("kind" in ('report', 'urlcheck'));`);

    this.addSql(
      `alter table "runs" add constraint "runs_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id");`,
    );
    this.addSql(
      `alter table "runs" add constraint "runs_job_id_foreign" foreign key ("job_id") references "jobs" ("id");`,
    );
    this.addSql(
      `alter table "runs" add constraint "runs_trigger_check" check ("trigger" in ('schedule', 'manual', 'replay'));`,
    );
    this.addSql(
      `alter table "runs" add constraint "runs_status_check" check ("status" in ('queued', 'running', 'succeeded', 'failed', 'cancelled'));`,
    );

    this.addSql(
      `alter table "outbox" add constraint "outbox_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id");`,
    );
    this.addSql(
      `alter table "outbox" add constraint "outbox_run_id_foreign" foreign key ("run_id") references "runs" ("id") on delete set null;`,
    );

    this.addSql(
      `alter table "notification_log" add constraint "notification_log_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id");`,
    );
    this.addSql(
      `alter table "notification_log" add constraint "notification_log_run_id_foreign" foreign key ("run_id") references "runs" ("id") on delete set null;`,
    );
    this.addSql(
      `alter table "notification_log" add constraint "notification_log_job_id_foreign" foreign key ("job_id") references "jobs" ("id") on delete set null;`,
    );
    this.addSql(
      `alter table "notification_log" add constraint "notification_log_status_check" check ("status" in ('pending', 'sent', 'failed'));`,
    );
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "users" drop constraint "users_organization_id_foreign";`);
    this.addSql(`alter table "memberships" drop constraint "memberships_organization_id_foreign";`);
    this.addSql(`alter table "connections" drop constraint "connections_organization_id_foreign";`);
    this.addSql(`alter table "ad_accounts" drop constraint "ad_accounts_organization_id_foreign";`);
    this.addSql(`alter table "jobs" drop constraint "jobs_organization_id_foreign";`);
    this.addSql(`alter table "runs" drop constraint "runs_organization_id_foreign";`);
    this.addSql(`alter table "outbox" drop constraint "outbox_organization_id_foreign";`);
    this.addSql(`alter table "notification_log" drop constraint "notification_log_organization_id_foreign";`);
    this.addSql(`alter table "memberships" drop constraint "memberships_user_id_foreign";`);
    this.addSql(`alter table "connections" drop constraint "connections_owner_id_foreign";`);
    this.addSql(`alter table "jobs" drop constraint "jobs_created_by_id_foreign";`);
    this.addSql(`alter table "ad_accounts" drop constraint "ad_accounts_connection_id_foreign";`);
    this.addSql(`alter table "jobs" drop constraint "jobs_account_id_foreign";`);
    this.addSql(`alter table "runs" drop constraint "runs_job_id_foreign";`);
    this.addSql(`alter table "notification_log" drop constraint "notification_log_job_id_foreign";`);
    this.addSql(`alter table "outbox" drop constraint "outbox_run_id_foreign";`);
    this.addSql(`alter table "notification_log" drop constraint "notification_log_run_id_foreign";`);

    this.addSql(`drop table if exists "organizations" cascade;`);
    this.addSql(`drop table if exists "users" cascade;`);
    this.addSql(`drop table if exists "memberships" cascade;`);
    this.addSql(`drop table if exists "connections" cascade;`);
    this.addSql(`drop table if exists "ad_accounts" cascade;`);
    this.addSql(`drop table if exists "jobs" cascade;`);
    this.addSql(`drop table if exists "runs" cascade;`);
    this.addSql(`drop table if exists "outbox" cascade;`);
    this.addSql(`drop table if exists "notification_log" cascade;`);
  }
}
