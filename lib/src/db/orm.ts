import { fileURLToPath } from 'node:url';
import type { MigrationInfo } from '@mikro-orm/core';
import { Migrator } from '@mikro-orm/migrations';
import { defineConfig, MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { entities } from './entities.ts';
import { migrationsList } from './migrations/index.ts';

export type Database = MikroORM;

/** Where generated migrations are written (`npm run db:migration` → lib/src/db/generate-migration.ts). */
export const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations', import.meta.url));

export interface OpenDatabaseOptions {
  /** Pool size; default 10. */
  poolMax?: number;
  /** SQL debug logging (MikroORM's logger). */
  debug?: boolean;
}

export function databaseConfig(url: string, opts: OpenDatabaseOptions = {}) {
  return defineConfig({
    clientUrl: url,
    entities,
    extensions: [Migrator],
    debug: opts.debug ?? false,
    pool: { min: 0, max: opts.poolMax ?? 10 },
    // Committed migrations are listed explicitly: no folder discovery, no TS loader, no snapshot files.
    migrations: {
      path: MIGRATIONS_DIR,
      pathTs: MIGRATIONS_DIR,
      migrationsList,
      snapshot: false,
      snapshotOnMigrate: false,
      silent: true,
      transactional: true,
      allOrNothing: true,
    },
    // Entities are plain classes; no metadata cache files on disk.
    metadataCache: { enabled: false },
  });
}

/** Connects (and checks the connection) with the project's entities and migrations. */
export async function openDatabase(url: string, opts: OpenDatabaseOptions = {}): Promise<MikroORM> {
  return MikroORM.init(databaseConfig(url, opts));
}

/**
 * Runs pending migrations; idempotent, and safe when several processes start at once: a session advisory
 * lock on a connection of its own serialises them, and the later ones find nothing pending.
 */
export async function migrate(orm: MikroORM): Promise<MigrationInfo[]> {
  const lock = new pg.Client({ connectionString: orm.config.get('clientUrl') });
  await lock.connect();
  try {
    await lock.query('select pg_advisory_lock(hashtext($1))', [MIGRATION_LOCK]);
    return await orm.migrator.up();
  } finally {
    await lock.end().catch(() => {}); // closing the session releases the lock
  }
}

const MIGRATION_LOCK = 'ppc-robot.migrate';
