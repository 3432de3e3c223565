import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { MikroORM } from '@mikro-orm/postgresql';
import { freePort } from '@ppc/lib/infra';
import { ApiToken, generateKey, Job, Membership, User } from '@ppc/lib/db';
import { seedAccount } from '../../../lib/src/db/fixtures/seed.ts';
import { API_TOKEN_PREFIX, newSecret } from '../../../services/gateway/src/auth/secrets.ts';

const GATEWAY_MAIN = fileURLToPath(new URL('../../../services/gateway/src/main.ts', import.meta.url));

export interface Seeded {
  orgId: string;
  jobId: string;
  /** A bearer API token with read scope (HTTP and `connection_init`). */
  token: string;
  /** Runs of the job, newest first is what `runs` returns. */
  runIds: string[];
}

/** One organization with an owner, a demo account, a job with `runs` runs, and an API token. */
export async function seed(orm: MikroORM, runs: number): Promise<Seeded> {
  const { orgId: org, accountId: account } = await seedAccount(orm, { orgName: 'Bench agency' });
  const em = orm.em.fork();
  const user = em.create(User, { organization: org, email: 'bench@example.com', name: 'Bench', passwordHash: null });
  em.create(Membership, { organization: org, user, role: 'owner' });
  const job = em.create(Job, {
    organization: org,
    account,
    name: 'Bench report',
    reportType: 'account-performance',
    params: {},
    output: { kind: 'csv' },
    notify: {},
  });
  const { secret, hash } = newSecret(API_TOKEN_PREFIX);
  em.create(ApiToken, {
    organization: org,
    user,
    name: 'bench',
    scopes: ['read'],
    tokenHash: hash,
    prefix: secret.slice(0, 12),
  });
  await em.flush();
  const rows = await em.execute<{ id: string }[]>(
    `insert into runs (id, organization_id, job_id, trigger, status, attempt, progress, last_event_seq, queued_at)
     select gen_random_uuid(), ?, ?, 'manual', (array['queued','running','succeeded','failed'])[1 + i % 4], 1, 0, 0,
            now() - (i || ' seconds')::interval
       from generate_series(1, ?) as i
     returning id`,
    [org, job.id, runs],
  );
  // Planner statistics, as autovacuum would have them on a live database (a bulk insert leaves none).
  await em.execute('analyze');
  return { orgId: org, jobId: job.id, token: secret, runIds: rows.map((r) => r.id) };
}

export interface GatewayProcess {
  url: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** The gateway as its own process (as deployed), so its event loop is not shared with the load generator. */
export async function spawnGateway(natsUrl: string, databaseUrl: string): Promise<GatewayProcess> {
  const port = await freePort();
  // GATEWAY_NODE_FLAGS (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`) for looking inside the gateway.
  const flags = (process.env.GATEWAY_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...flags, GATEWAY_MAIN], {
    env: {
      PATH: process.env.PATH,
      NATS_URL: natsUrl,
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      PPC_SECRET_KEY: `bench:${generateKey()}`,
      // One token drives the whole load; the per-caller limit is not what is measured.
      PPC_RATE_LIMIT: '1000000',
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`gateway exited during start (${child.exitCode})`);
    if (
      await fetch(`${url}/readyz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      break;
    if (Date.now() > deadline) throw new Error('gateway not ready after 60 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    child,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
