// Applies pending database migrations and exits: docker-compose.yml's `migrate` step and the init
// container of gateway and system on Kubernetes. Safe when several run at once (an advisory lock
// serialises them; the later ones find nothing to do). Reads only DATABASE_URL.
import { loadConfig } from '@ppc/lib/config';
import { migrate, openDatabase } from '@ppc/lib/db';
import { ConfigError } from '@ppc/lib/errors';
import { databaseEnv } from '@ppc/lib/service';

export const migrateEnv = databaseEnv;

if (import.meta.main) {
  try {
    const { databaseUrl } = loadConfig(migrateEnv, process.env);
    const orm = await openDatabase(databaseUrl, { poolMax: 1 });
    try {
      const applied = await migrate(orm);
      process.stdout.write(
        applied.length ? `migrated: ${applied.map((m) => m.name).join(', ')}\n` : 'database up to date\n',
      );
    } finally {
      await orm.close(true);
    }
  } catch (err) {
    const msg = err instanceof ConfigError ? `configuration error: ${err.message}` : (err as Error).message;
    process.stderr.write(`migrate: ${msg}\n`);
    process.exit(1);
  }
}
