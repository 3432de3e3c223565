// Helpers of `npm run bench -- system`: a throwaway PostgreSQL, and system service replicas as real processes.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { generateKey } from '@ppc/lib/db';
import { freePort, startPostgres } from '@ppc/lib/infra';

/** An embedded PostgreSQL in a temp dir on a free port, removed afterwards. */
export async function withPostgres<T>(fn: (databaseUrl: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'ppc-bench-pg-'));
  const pg = await startPostgres({
    dataDir: join(dir, 'pg'),
    port: await freePort(),
    database: 'bench',
    persistent: false,
  });
  try {
    return await fn(pg.url);
  } finally {
    await pg.stop().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface Replica {
  child: ChildProcess;
  /** Jobs this replica claimed, from its `due jobs enqueued` log lines. */
  claimed(): number;
  stop(): Promise<void>;
}

/** One keyring for both replicas, as in a deployment; nothing is sealed in this benchmark. */
const SECRET_KEY = `bench:${generateKey()}`;

const SYSTEM_MAIN = new URL('../../../services/system/src/main.ts', import.meta.url).pathname;

/** Starts `services/system/src/main.ts` and resolves once its /readyz answers 200. */
export async function spawnReplica(n: number, natsUrl: string, databaseUrl: string, region: string): Promise<Replica> {
  const port = await freePort();
  // SYSTEM_NODE_FLAGS (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`) for looking inside a replica.
  const flags = (process.env.SYSTEM_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...flags, SYSTEM_MAIN], {
    env: {
      PATH: process.env.PATH,
      NATS_URL: natsUrl,
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      PPC_REGION: region,
      PPC_SECRET_KEY: SECRET_KEY,
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let claimed = 0;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (!line.includes('due jobs enqueued')) return;
    try {
      claimed += (JSON.parse(line) as { claimed?: number }).claimed ?? 0;
    } catch {
      // not a log line of ours
    }
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`system replica ${n} exited during start (${child.exitCode})`);
    const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`system replica ${n} not ready after 60 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    child,
    claimed: () => claimed,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
