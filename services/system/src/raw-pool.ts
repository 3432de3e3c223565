import type { Database as MikroORM } from '@ppc/lib/db';
import pg from 'pg';

/**
 * Plain node-pg connections beside MikroORM's, for the hot statements (run projection, the notifier's
 * success check). They go out as named (prepared) statements, planned once per connection: MikroORM's
 * `execute` sends unnamed ones, which PostgreSQL parses and plans on every call (milliseconds for the
 * projection). Same database and role as the ORM; idle connections close by themselves and never keep the
 * process alive.
 */
const pools = new WeakMap<MikroORM, pg.Pool>();

export function rawPool(orm: MikroORM): pg.Pool {
  let pool = pools.get(orm);
  if (!pool) {
    pool = new pg.Pool({
      connectionString: orm.config.get('clientUrl'),
      max: 4,
      idleTimeoutMillis: 10_000,
      allowExitOnIdle: true,
    });
    // A connection that dies while idle (server restart) is dropped from the pool, not thrown at the process.
    pool.on('error', () => {});
    pools.set(orm, pool);
  }
  return pool;
}
