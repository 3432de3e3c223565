import { Migration } from '@mikro-orm/migrations';

export class Migration20261123122354_recorder extends Migration {
  override name = 'Migration20261123122354_recorder';

  override up(): void | Promise<void> {
    this.addSql(`alter table "jobs" add "consecutive_failures" int not null default 0;`);

    this.addSql(`create index "runs_job_status_finished_idx" on "runs" ("job_id", "status", "finished_at");`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "jobs" drop column "consecutive_failures";`);

    this.addSql(`drop index "runs_job_status_finished_idx";`);
  }
}
