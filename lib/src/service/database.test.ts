// Integration tests against the real PostgreSQL started by the test harness.
import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { waitFor } from '../testing/index.ts';
import { connectDatabase, DatabaseUnavailableError } from './database.ts';

describe('connectDatabase', () => {
  it('survives the server dropping its idle connections, and reconnects on the next query', async () => {
    const lost: string[] = [];
    const pool = await connectDatabase(inject('databaseUrl'), { onIdleError: (err) => lost.push(err.message) });
    const { rows } = await pool.query<{ pid: number }>('select pg_backend_pid() as pid');
    const admin = new pg.Client({ connectionString: inject('postgresAdminUrl') });
    await admin.connect();
    await admin.query('select pg_terminate_backend($1)', [rows[0]!.pid]);
    await admin.end();
    await waitFor(() => lost.length === 1, { what: 'the idle connection error to be reported' });
    expect(lost[0]).toMatch(/terminating connection/);
    expect((await pool.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    await pool.end();
  });

  it('fails at start with the URL (password hidden) and the reason', async () => {
    const err = await connectDatabase('postgres://app:s3cret@127.0.0.1:1/ppc').catch((e) => e);
    expect(err).toBeInstanceOf(DatabaseUnavailableError);
    expect(err.message).toMatch(
      /^cannot reach PostgreSQL at postgres:\/\/app:\*\*\*@127\.0\.0\.1:1\/ppc \(DATABASE_URL\): /,
    );
    expect(err.message).not.toContain('s3cret');
  });
});
