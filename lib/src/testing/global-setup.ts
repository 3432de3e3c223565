import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { freePort } from '../infra/ports.ts';
import { startNatsServer } from '../infra/nats-server.ts';
import { startPostgres } from '../infra/postgres.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    natsUrl: string;
    databaseUrl: string;
    /** Admin URL template for creating per-test databases on the same cluster. */
    postgresAdminUrl: string;
  }
}

/** One real nats-server (JetStream) and one real PostgreSQL per test run, on free ports, in a temp dir. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = mkdtempSync(join(tmpdir(), 'ppc-test-'));
  chmodSync(dir, 0o755);
  const nats = await startNatsServer({ storeDir: join(dir, 'nats') });
  const pg = await startPostgres({
    dataDir: join(dir, 'pg'),
    port: await freePort(),
    database: 'ppc_test',
    persistent: false,
  });
  project.provide('natsUrl', nats.url);
  project.provide('databaseUrl', pg.url);
  project.provide('postgresAdminUrl', pg.urlFor('postgres'));
  return async () => {
    await Promise.allSettled([nats.stop(), pg.stop()]);
    rmSync(dir, { recursive: true, force: true });
  };
}
