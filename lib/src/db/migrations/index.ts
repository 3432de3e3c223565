// The committed migrations, in order. `generate-migration.ts` writes a new file here; add it to this list.
import { Migration20261123120556_initial } from './Migration20261123120556_initial.ts';
import { Migration20261123122354_recorder } from './Migration20261123122354_recorder.ts';

export const migrationsList = [
  { name: 'Migration20261123120556_initial', class: Migration20261123120556_initial },
  { name: 'Migration20261123122354_recorder', class: Migration20261123122354_recorder },
];
