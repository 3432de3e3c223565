// The committed migrations, in order. `generate-migration.ts` writes a new file here; add it to this list.
import { Migration20261123120556_initial } from './Migration20261123120556_initial.ts';
import { Migration20261123122354_recorder } from './Migration20261123122354_recorder.ts';
import { Migration20261123124959_fencing } from './Migration20261123124959_fencing.ts';
import { Migration20261123132333_login_customer } from './Migration20261123132333_login_customer.ts';
import { Migration20261123145419_auth } from './Migration20261123145419_auth.ts';
import { Migration20261123145506_tenant_rls } from './Migration20261123145506_tenant_rls.ts';

export const migrationsList = [
  { name: 'Migration20261123120556_initial', class: Migration20261123120556_initial },
  { name: 'Migration20261123122354_recorder', class: Migration20261123122354_recorder },
  { name: 'Migration20261123124959_fencing', class: Migration20261123124959_fencing },
  { name: 'Migration20261123132333_login_customer', class: Migration20261123132333_login_customer },
  { name: 'Migration20261123145419_auth', class: Migration20261123145419_auth },
  { name: 'Migration20261123145506_tenant_rls', class: Migration20261123145506_tenant_rls },
];
