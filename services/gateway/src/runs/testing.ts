import { AdAccount, Job, Run, type RunStatus } from '@ppc/lib/db';
import type { GatewayHarness, Tenant } from '../testing/harness.ts';

/** A report job of the tenant (on its account, or on `accountId`), written as the owner role. */
export async function seedJob(
  h: GatewayHarness,
  t: Tenant,
  opts: { name?: string; accountId?: string; output?: Record<string, unknown> } = {},
): Promise<string> {
  const em = h.orm.em.fork();
  const job = em.create(Job, {
    organization: t.orgId,
    account: opts.accountId ?? t.accountId,
    createdBy: t.userId,
    name: opts.name ?? 'Search terms',
    kind: 'report',
    reportType: 'search-terms',
    params: {},
    output: opts.output ?? { kind: 'xlsx' },
    notify: {},
  });
  await em.flush();
  return job.id;
}

/** A second ad account on the tenant's connection. */
export async function seedAccount(h: GatewayHarness, t: Tenant, name: string): Promise<string> {
  const em = h.orm.em.fork();
  const a = em.create(AdAccount, {
    organization: t.orgId,
    connection: t.connectionId,
    platform: 'demo',
    platformAccountId: `acc-${crypto.randomUUID()}`,
    name,
    currency: 'EUR',
    timeZone: 'UTC',
  });
  await em.flush();
  return a.id;
}

export interface SeedRun {
  status?: RunStatus;
  attempt?: number;
  queuedAt?: Date;
  outputLinks?: { kind: string; name: string; url: string }[];
  errorCode?: string;
  errorMessage?: string;
}

/** A run of `jobId` in the state given, as the recorder would have projected it. */
export async function seedRun(h: GatewayHarness, t: Tenant, jobId: string, r: SeedRun = {}): Promise<string> {
  const em = h.orm.em.fork();
  const status = r.status ?? 'queued';
  const finished = status === 'succeeded' || status === 'failed' || status === 'cancelled';
  const queuedAt = r.queuedAt ?? new Date();
  const run = em.create(Run, {
    organization: t.orgId,
    job: jobId,
    trigger: 'manual',
    status,
    attempt: r.attempt ?? 1,
    progress: status === 'succeeded' ? 100 : status === 'running' ? 40 : 0,
    phase: status === 'queued' ? null : 'processing',
    queuedAt,
    startedAt: status === 'queued' ? null : new Date(queuedAt.getTime() + 1000),
    finishedAt: finished ? new Date(queuedAt.getTime() + 5000) : null,
    workerInstance: status === 'queued' ? null : 'report-worker-test',
    outputLinks: r.outputLinks ?? null,
    rowCounts: status === 'succeeded' ? { Terms: 42 } : null,
    timings: status === 'succeeded' ? { fetching: 1000, processing: 2000, writing: 1000, total: 4000 } : null,
    errorCode: r.errorCode ?? null,
    errorMessage: r.errorMessage ?? null,
  });
  await em.flush();
  return run.id;
}

/** The run row as stored (owner role). */
export async function storedRun(h: GatewayHarness, id: string): Promise<Run | null> {
  return h.orm.em.fork().findOne(Run, { id });
}
