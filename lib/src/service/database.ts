import pg from 'pg';

/** Thrown when the database named by DATABASE_URL cannot be reached at start. */
export class DatabaseUnavailableError extends Error {
  constructor(url: string, cause: unknown) {
    const where = url.replace(/\/\/([^:@/]+)(:[^@/]*)?@/, '//$1:***@');
    super(`cannot reach PostgreSQL at ${where} (DATABASE_URL): ${(cause as Error).message}`, { cause });
    this.name = 'DatabaseUnavailableError';
  }
}

/** A connection pool checked with one round trip, so a wrong DATABASE_URL stops start-up with a clear message. */
export async function connectDatabase(
  url: string,
  opts: { max?: number; onIdleError?: (err: Error) => void } = {},
): Promise<pg.Pool> {
  const pool = new pg.Pool({ connectionString: url, max: opts.max ?? 5, connectionTimeoutMillis: 5000 });
  // An idle connection dropped by the server (restart, shutdown) must not crash the process;
  // the pool replaces it on the next query.
  pool.on('error', (err) => opts.onIdleError?.(err));
  try {
    await pool.query('select 1');
  } catch (err) {
    await pool.end().catch(() => {});
    throw new DatabaseUnavailableError(url, err);
  }
  return pool;
}
