import { Migration } from '@mikro-orm/migrations';

export class Migration20261123132333_login_customer extends Migration {
  override name = 'Migration20261123132333_login_customer';

  override up(): void | Promise<void> {
    this.addSql(`alter table "ad_accounts" add "login_customer_id" varchar(20) null;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "ad_accounts" drop column "login_customer_id";`);
  }
}
