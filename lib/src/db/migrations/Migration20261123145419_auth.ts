import { Migration } from '@mikro-orm/migrations';

export class Migration20261123145419_auth extends Migration {
  override name = 'Migration20261123145419_auth';

  override up(): void | Promise<void> {
    this.addSql(
      `create table "sessions" ("id" uuid not null, "organization_id" uuid not null, "user_id" uuid not null, "token_hash" varchar(64) not null, "expires_at" timestamptz not null, "revoked_at" timestamptz null, "last_seen_at" timestamptz not null default now(), "user_agent" varchar(300) null, "created_at" timestamptz not null default now(), primary key ("id"));`,
    );
    this.addSql(`alter table "sessions" add constraint "sessions_token_hash_unique" unique ("token_hash");`);
    this.addSql(`create index "sessions_user_id_index" on "sessions" ("user_id");`);
    this.addSql(`create index "sessions_organization_id_index" on "sessions" ("organization_id");`);

    this.addSql(
      `create table "api_tokens" ("id" uuid not null, "organization_id" uuid not null, "user_id" uuid not null, "name" varchar(200) not null, "scopes" jsonb not null, "token_hash" varchar(64) not null, "prefix" varchar(16) not null, "expires_at" timestamptz null, "revoked_at" timestamptz null, "last_used_at" timestamptz null, "created_at" timestamptz not null default now(), primary key ("id"));`,
    );
    this.addSql(`alter table "api_tokens" add constraint "api_tokens_token_hash_unique" unique ("token_hash");`);
    this.addSql(`create index "api_tokens_organization_id_index" on "api_tokens" ("organization_id");`);
    this.addSql(`create index "api_tokens_user_id_index" on "api_tokens" ("user_id");`);

    this.addSql(`alter table "users" add "failed_logins" int not null default 0, add "locked_until" timestamptz null;`);

    this.addSql(
      `alter table "sessions" add constraint "sessions_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id");`,
    );
    this.addSql(
      `alter table "sessions" add constraint "sessions_user_id_foreign" foreign key ("user_id") references "users" ("id");`,
    );

    this.addSql(
      `alter table "api_tokens" add constraint "api_tokens_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id");`,
    );
    this.addSql(
      `alter table "api_tokens" add constraint "api_tokens_user_id_foreign" foreign key ("user_id") references "users" ("id");`,
    );
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists "sessions" cascade;`);
    this.addSql(`drop table if exists "api_tokens" cascade;`);

    this.addSql(`alter table "users" drop column "failed_logins", drop column "locked_until";`);
  }
}
