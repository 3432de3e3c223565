// Writes a migration for the difference between the entities and a database migrated to the latest
// committed migration: `DATABASE_URL=... node lib/src/db/generate-migration.ts [name]`.
// Then add the new class to migrations/index.ts and commit both.
import { MIGRATIONS_DIR, migrate, openDatabase } from './orm.ts';

const url = process.env.DATABASE_URL;
if (!url) throw new Error('DATABASE_URL: required (a scratch database; it is migrated to the latest first)');
const orm = await openDatabase(url);
try {
  await migrate(orm);
  const result = await orm.migrator.create(MIGRATIONS_DIR, false, false, process.argv[2]);
  if (!result.fileName) process.stdout.write('no changes: the entities match the committed migrations\n');
  else process.stdout.write(`wrote ${result.fileName}\n`);
} finally {
  await orm.close(true);
}
