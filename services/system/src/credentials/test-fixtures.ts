// Test support, not part of the service: rows for credential and account-sync tests.
import type { MikroORM } from '@mikro-orm/postgresql';
import {
  AdAccount,
  Connection,
  Job,
  type Keyring,
  Organization,
  parseKeyring,
  Run,
  type RunStatus,
  sealSecret,
  User,
} from '@ppc/lib/db';
import { generateKey } from '@ppc/lib/db';
import type { Platform } from './config.ts';

export const testKeyring = (): Keyring => parseKeyring(`k1:${generateKey()}`);

export interface SeededConnection {
  orgId: string;
  ownerId: string;
  connectionId: string;
  label: string;
}

export interface SeededRun extends SeededConnection {
  accountId: string;
  jobId: string;
  runId: string;
  platform: Platform;
}

/** An organization, its owner and one connection holding `refreshToken` sealed under `keyring`. */
export async function seedConnection(
  orm: MikroORM,
  keyring: Keyring,
  opts: { platform?: Platform; refreshToken?: string; sealed?: string; status?: 'active' | 'revoked'; orgId?: string },
): Promise<SeededConnection> {
  const em = orm.em.fork();
  const org = opts.orgId ? em.getReference(Organization, opts.orgId) : em.create(Organization, { name: 'Acme' });
  const owner = em.create(User, { organization: org, email: `${crypto.randomUUID()}@example.test`, name: 'Owner' });
  const label = `owner-${crypto.randomUUID().slice(0, 8)}@example.test`;
  const sealed = opts.sealed ?? sealSecret(opts.refreshToken ?? 'demo', keyring);
  const conn = em.create(Connection, {
    organization: org,
    owner,
    platform: opts.platform ?? 'demo',
    label,
    sealedRefreshToken: sealed,
    keyId: keyring.currentKeyId,
    status: opts.status ?? 'active',
  });
  await em.flush();
  return { orgId: org.id, ownerId: owner.id, connectionId: conn.id, label };
}

/** An ad account on the connection, a job reading it and a run of that job in `status`. */
export async function seedRun(
  orm: MikroORM,
  conn: SeededConnection,
  opts: { platform?: Platform; status?: RunStatus; jobOrgId?: string } = {},
): Promise<SeededRun> {
  const em = orm.em.fork();
  const platform = opts.platform ?? 'demo';
  const account = em.create(AdAccount, {
    organization: conn.orgId,
    connection: conn.connectionId,
    platform,
    platformAccountId: String(Math.floor(Math.random() * 1e10)),
    name: 'Shop',
    currency: 'EUR',
    timeZone: 'Europe/Prague',
  });
  const jobOrg = opts.jobOrgId ?? conn.orgId;
  const job = em.create(Job, {
    organization: jobOrg,
    account,
    name: 'weekly',
    reportType: 'campaigns',
    params: {},
    output: { kind: 'csv' },
    notify: {},
    cron: null,
  });
  const run = em.create(Run, { organization: jobOrg, job, trigger: 'manual', status: opts.status ?? 'queued' });
  await em.flush();
  return { ...conn, accountId: account.id, jobId: job.id, runId: run.id, platform };
}

/** Another run on the same account. */
export async function seedRunOnJob(orm: MikroORM, seeded: SeededRun, status: RunStatus = 'running'): Promise<string> {
  const em = orm.em.fork();
  const run = em.create(Run, { organization: seeded.orgId, job: seeded.jobId, trigger: 'manual', status });
  await em.flush();
  return run.id;
}
