import { Migration } from '@mikro-orm/migrations';

export class Migration20261123124959_fencing extends Migration {
  override name = 'Migration20261123124959_fencing';

  override up(): void | Promise<void> {
    this.addSql(
      `create table "fences" ("name" varchar(100) not null, "token" bigint not null, "updated_at" timestamptz not null default now(), primary key ("name"));`,
    );

    this.addSql(`alter table "runs" add "fencing_token" bigint null;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists "fences" cascade;`);

    this.addSql(`alter table "runs" drop column "fencing_token";`);
  }
}
