// Integration tests against the real PostgreSQL (a fresh database for this file) and, for the service
// test, a private nats-server (the system consumer and task streams are shared on the harness' server).
import { type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { MikroORM } from '@mikro-orm/postgresql';
import { Fence, generateKey, Job, migrate, OutboxMessage, openDatabase, raiseFence, Run } from '@ppc/lib/db';
import { connectNats, publish } from '@ppc/lib/nats';
import { runService } from '@ppc/lib/service';
import { privateNatsServer, waitFor } from '@ppc/lib/testing';
import { headers, type ReportTask, streams, SystemTaskMsg } from '@ppc/proto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { seedAccount } from '../../../lib/src/db/fixtures/seed.ts';
import { freshDatabaseUrl } from '../../../lib/src/db/fixtures/test-database.ts';
import { CLOCK_FENCE, enqueueDueJobs, nextFireAfter } from './due-jobs.ts';
import { system } from './main.ts';

const REGION = 'eu';
let url: string;
let orm: MikroORM;
/** A second ORM with its own pool: a second system replica. */
let orm2: MikroORM;
let base: { orgId: string; accountId: string; connectionId: string };

interface JobSpec {
  cron: string | null;
  timeZone?: string;
  nextRunAt: Date | null;
  account?: typeof base;
  reportType?: string | null;
  kind?: 'report' | 'urlcheck';
  params?: Record<string, unknown>;
}

async function createJobs(n: number, spec: JobSpec | ((i: number) => JobSpec), db = orm): Promise<string[]> {
  const em = db.em.fork();
  const jobs: Job[] = [];
  for (let i = 0; i < n; i++) {
    const s = typeof spec === 'function' ? spec(i) : spec;
    const acc = s.account ?? base;
    jobs.push(
      em.create(Job, {
        organization: acc.orgId,
        account: acc.accountId,
        name: `job ${i}`,
        kind: s.kind ?? 'report',
        reportType: s.reportType === undefined ? 'campaigns' : s.reportType,
        params: s.params ?? { days: 7 },
        output: { kind: 'csv' },
        notify: {},
        cron: s.cron,
        timeZone: s.timeZone ?? 'UTC',
        nextRunAt: s.nextRunAt,
      }),
    );
  }
  await em.flush();
  return jobs.map((j) => j.id);
}

const jobById = (id: string, db = orm) => db.em.fork().findOneOrFail(Job, id);
const runsOf = (jobIds: string[], db = orm) =>
  db.em.fork().find(Run, { job: { $in: jobIds } }, { orderBy: { scheduledFor: 'asc' } });
const outboxOf = (runIds: string[]) => orm.em.fork().find(OutboxMessage, { run: { $in: runIds } });
const at = (iso: string) => new Date(iso);

beforeAll(async () => {
  url = await freshDatabaseUrl('due_jobs');
  orm = await openDatabase(url);
  await migrate(orm);
  orm2 = await openDatabase(url);
  base = await seedAccount(orm);
});
afterAll(async () => {
  await orm2?.close(true);
  await orm?.close(true);
});
// enqueueDueJobs looks at every job: each test starts with none enabled, so its counts are its own.
beforeEach(async () => {
  await orm.em.fork().execute('update jobs set enabled = false where enabled');
});

describe('enqueueDueJobs', () => {
  it('two replicas racing over 1,000 due jobs enqueue exactly 1,000 runs, none twice', async () => {
    const now = at('2030-01-01T10:02:00Z');
    // Due at different slots, so the claim order (oldest first) matters and both replicas see all of them.
    const ids = await createJobs(1000, (i) => ({
      cron: '*/5 * * * *',
      nextRunAt: new Date(at('2030-01-01T09:00:00Z').getTime() + (i % 13) * 5 * 60_000),
    }));
    const claimedBy: [Set<string>, Set<string>] = [new Set(), new Set()];
    // A barrier on the first batch: each replica holds its locked batch until the other has claimed one,
    // so their transactions certainly overlap and SKIP LOCKED (not luck) keeps them apart.
    const firstClaim = [Promise.withResolvers<void>(), Promise.withResolvers<void>()] as const;
    const replica = (db: MikroORM, me: 0 | 1) =>
      enqueueDueJobs(db, {
        now,
        region: REGION,
        batchSize: 40,
        async onClaim(jobIds) {
          for (const id of jobIds) claimedBy[me].add(id);
          if (claimedBy[me].size !== jobIds.length) return;
          firstClaim[me].resolve();
          const other = firstClaim[me === 0 ? 1 : 0].promise;
          let timer: NodeJS.Timeout | undefined;
          const timeout = new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error('the other replica never claimed a batch')), 10_000);
          });
          await Promise.race([other, timeout]).finally(() => clearTimeout(timer));
        },
      });
    const [a, b] = await Promise.all([replica(orm, 0), replica(orm2, 1)]);

    expect(a.claimed).toBeGreaterThan(0);
    expect(b.claimed).toBeGreaterThan(0);
    expect([...claimedBy[0]].filter((id) => claimedBy[1].has(id))).toEqual([]);
    expect(a.enqueued + b.enqueued).toBe(1000);
    expect(a.alreadyEnqueued + b.alreadyEnqueued).toBe(0);
    expect(a.disabled + b.disabled).toBe(0);

    const runs = await runsOf(ids);
    expect(runs).toHaveLength(1000);
    expect(new Set(runs.map((r) => r.job.id)).size).toBe(1000);
    expect(runs.every((r) => r.trigger === 'schedule' && r.status === 'queued')).toBe(true);
    const outbox = await outboxOf(runs.map((r) => r.id));
    expect(outbox).toHaveLength(1000);
    expect(new Set(outbox.map((o) => o.msgId))).toEqual(new Set(runs.map((r) => `run.${r.id}`)));

    // Every job moved on to the next slot after now; nothing is due any more.
    const jobs = await orm.em.fork().find(Job, { id: { $in: ids } });
    expect(new Set(jobs.map((j) => j.nextRunAt?.toISOString()))).toEqual(new Set(['2030-01-01T10:05:00.000Z']));
    const again = await Promise.all([
      enqueueDueJobs(orm, { now, region: REGION }),
      enqueueDueJobs(orm2, { now, region: REGION }),
    ]);
    expect(again.map((r) => r.claimed)).toEqual([0, 0]);
    expect(await orm.em.fork().count(Run, { job: { $in: ids } })).toBe(1000);
  });

  it('creates a run for the due slot with its task in the outbox and advances next_run_at past now', async () => {
    const now = at('2030-02-01T10:07:30Z');
    const [quarter, hourlyBehind, notDue, oneOff, prague] = await createJobs(5, (i) => {
      const specs: JobSpec[] = [
        { cron: '*/15 * * * *', nextRunAt: at('2030-02-01T10:00:00Z') },
        // Three hours behind (the mesh was down): one run for the oldest slot, then the next after now.
        { cron: '0 * * * *', nextRunAt: at('2030-02-01T07:00:00Z') },
        { cron: '*/15 * * * *', nextRunAt: at('2030-02-01T10:15:00Z') },
        { cron: null, nextRunAt: at('2030-02-01T10:05:00Z') },
        { cron: '0 9 * * *', timeZone: 'Europe/Prague', nextRunAt: at('2030-02-01T08:00:00Z') },
      ];
      return specs[i]!;
    });
    const ids = [quarter!, hourlyBehind!, notDue!, oneOff!, prague!];
    const res = await enqueueDueJobs(orm, { now, region: REGION });
    expect(res).toEqual({
      batches: 1,
      claimed: 4,
      enqueued: 4,
      alreadyEnqueued: 0,
      disabled: 0,
      truncated: false,
      stale: false,
    });

    const next = async (id: string) => (await jobById(id)).nextRunAt?.toISOString() ?? null;
    expect(await next(quarter!)).toBe('2030-02-01T10:15:00.000Z');
    expect(await next(hourlyBehind!)).toBe('2030-02-01T11:00:00.000Z');
    expect(await next(notDue!)).toBe('2030-02-01T10:15:00.000Z');
    expect(await next(oneOff!)).toBeNull();
    expect((await jobById(oneOff!)).enabled).toBe(true);
    expect(await next(prague!)).toBe('2030-02-02T08:00:00.000Z'); // 09:00 CET

    const runs = await runsOf(ids);
    expect(runs.map((r) => [r.job.id, r.scheduledFor?.toISOString()])).toEqual(
      expect.arrayContaining([
        [quarter, '2030-02-01T10:00:00.000Z'],
        [hourlyBehind, '2030-02-01T07:00:00.000Z'],
        [oneOff, '2030-02-01T10:05:00.000Z'],
        [prague, '2030-02-01T08:00:00.000Z'],
      ]),
    );
    expect(runs).toHaveLength(4);

    const run = runs.find((r) => r.job.id === quarter)!;
    const [row] = await outboxOf([run.id]);
    expect(row).toMatchObject({
      type: 'report.task.v1',
      subject: `tasks.report.${REGION}.campaigns`,
      msgId: `run.${run.id}`,
      sentAt: null,
    });
    expect(row!.body).toEqual({
      runId: run.id,
      jobId: quarter!,
      orgId: base.orgId,
      accountId: base.accountId,
      connectionId: base.connectionId,
      platform: 'demo',
      region: REGION,
      attempt: 1,
      trigger: 'schedule',
      enqueuedAt: now.toISOString(),
      output: { kind: 'csv' },
      reportType: 'campaigns',
      params: { days: 7 },
    } satisfies ReportTask);

    // The same tick again finds nothing due.
    expect((await enqueueDueJobs(orm, { now, region: REGION })).claimed).toBe(0);
  });

  it('enqueues a URL-check job as urlcheck.task.v1 with its params as options', async () => {
    const [id] = await createJobs(1, {
      cron: '0 * * * *',
      nextRunAt: at('2030-02-02T10:00:00Z'),
      kind: 'urlcheck',
      reportType: null,
      params: { maxUrls: 100 },
    });
    const res = await enqueueDueJobs(orm, { now: at('2030-02-02T10:00:00Z'), region: REGION });
    expect(res.enqueued).toBe(1);
    const [run] = await runsOf([id!]);
    const [row] = await outboxOf([run!.id]);
    expect(row).toMatchObject({ type: 'urlcheck.task.v1', subject: `tasks.urlcheck.${REGION}` });
    expect(row!.body).toMatchObject({ runId: run!.id, options: { maxUrls: 100 } });
  });

  it('works in bounded batches and reports when it stopped at the bound', async () => {
    const now = at('2030-03-01T10:00:00Z');
    const ids = await createJobs(25, { cron: '0 * * * *', nextRunAt: now });
    const first = await enqueueDueJobs(orm, { now, region: REGION, batchSize: 10, maxBatches: 2 });
    expect(first).toMatchObject({ batches: 2, claimed: 20, enqueued: 20, truncated: true });
    const rest = await enqueueDueJobs(orm, { now, region: REGION, batchSize: 10, maxBatches: 2 });
    expect(rest).toMatchObject({ batches: 1, claimed: 5, enqueued: 5, truncated: false });
    expect(await orm.em.fork().count(Run, { job: { $in: ids } })).toBe(25);
  });

  it('stops between batches when its signal is aborted', async () => {
    const now = at('2030-03-02T10:00:00Z');
    await createJobs(30, { cron: '0 * * * *', nextRunAt: now });
    const ac = new AbortController();
    const res = await enqueueDueJobs(orm, {
      now,
      region: REGION,
      batchSize: 10,
      signal: ac.signal,
      onClaim: () => ac.abort(),
    });
    expect(res).toMatchObject({ batches: 1, enqueued: 10, truncated: true });
  });

  it('never creates a second run for a slot that already has one: the job only advances', async () => {
    const slot = at('2030-04-01T10:00:00Z');
    const [id] = await createJobs(1, { cron: '0 * * * *', nextRunAt: slot });
    // As if next_run_at had been moved back to an enqueued slot (an edit, a restore).
    const em = orm.em.fork();
    const existing = em.create(Run, { organization: base.orgId, job: id!, trigger: 'schedule', scheduledFor: slot });
    await em.flush();
    const res = await enqueueDueJobs(orm, { now: at('2030-04-01T10:00:30Z'), region: REGION });
    expect(res).toMatchObject({ claimed: 1, enqueued: 0, alreadyEnqueued: 1 });
    const runs = await runsOf([id!]);
    expect(runs.map((r) => r.id)).toEqual([existing.id]);
    expect(await orm.em.fork().count(OutboxMessage, { run: existing.id })).toBe(0);
    expect((await jobById(id!)).nextRunAt?.toISOString()).toBe('2030-04-01T11:00:00.000Z');
  });

  it('disables a job whose account or connection is gone, or that cannot run, with the reason', async () => {
    const removed = await seedAccount(orm, { accountStatus: 'removed' });
    const revoked = await seedAccount(orm, { revoked: true });
    const nextRunAt = at('2030-05-01T10:00:00Z');
    const [ok, accountGone, connectionGone, badCron, badZone, badType] = await createJobs(6, (i) => {
      const specs: JobSpec[] = [
        { cron: '0 * * * *', nextRunAt },
        { cron: '0 * * * *', nextRunAt, account: removed },
        { cron: '0 * * * *', nextRunAt, account: revoked },
        { cron: 'every day', nextRunAt },
        { cron: '0 * * * *', timeZone: 'Mars/Olympus_Mons', nextRunAt },
        { cron: '0 * * * *', nextRunAt, reportType: 'not a token' },
      ];
      return specs[i]!;
    });
    const res = await enqueueDueJobs(orm, { now: nextRunAt, region: REGION });
    expect(res).toMatchObject({ claimed: 6, enqueued: 1, disabled: 5 });

    const reasons: Record<string, string | null> = {};
    for (const id of [accountGone!, connectionGone!, badCron!, badZone!, badType!]) {
      const job = await jobById(id);
      expect(job.enabled).toBe(false);
      reasons[id] = job.disabledReason ?? null;
    }
    expect(reasons[accountGone!]).toBe(`ad account ${removed.accountId} was removed`);
    expect(reasons[connectionGone!]).toBe(`connection ${revoked.connectionId} was revoked; reconnect it`);
    expect(reasons[badCron!]).toMatch(/^invalid schedule "every day" in UTC: /);
    expect(reasons[badZone!]).toMatch(/^invalid schedule "0 \* \* \* \*" in Mars\/Olympus_Mons: /);
    expect(reasons[badType!]).toMatch(/^cannot build its task: report\.task\.v1: \/reportType: /);
    expect(await runsOf([accountGone!, connectionGone!, badCron!, badZone!, badType!])).toEqual([]);
    const healthy = await jobById(ok!);
    expect(healthy.enabled).toBe(true);
    expect(healthy.disabledReason).toBeNull();
    expect(await runsOf([ok!])).toHaveLength(1);
  });
});

describe('schedules across daylight-saving changes', () => {
  const local = (d: Date, timeZone: string) => {
    const parts = new Intl.DateTimeFormat('en-CA', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    }).formatToParts(d);
    const get = (t: string) => parts.find((p) => p.type === t)?.value ?? '';
    return { day: `${get('year')}-${get('month')}-${get('day')}`, time: `${get('hour')}:${get('minute')}` };
  };

  /** Fires a tick every `stepMin` minutes from `from` to `to` and returns the job's runs in local time. */
  async function simulate(cron: string, timeZone: string, from: string, to: string, stepMin = 15) {
    const start = at(from);
    const [id] = await createJobs(1, { cron, timeZone, nextRunAt: nextFireAfter(cron, timeZone, start) });
    for (let t = start.getTime(); t <= at(to).getTime(); t += stepMin * 60_000) {
      await enqueueDueJobs(orm, { now: new Date(t), region: REGION });
    }
    const runs = await runsOf([id!]);
    return runs.map((r) => ({ utc: r.scheduledFor!.toISOString(), ...local(r.scheduledFor!, timeZone) }));
  }

  it('Europe/Prague, 02:30 daily across the spring-forward gap: one run per local day', async () => {
    const runs = await simulate('30 2 * * *', 'Europe/Prague', '2026-03-27T00:00:00Z', '2026-03-31T00:00:00Z');
    expect(runs.map((r) => r.day)).toEqual(['2026-03-27', '2026-03-28', '2026-03-29', '2026-03-30']);
    // 02:30 does not exist on 29 March (02:00 CET → 03:00 CEST): that day's run is at 03:00.
    expect(runs.map((r) => r.time)).toEqual(['02:30', '02:30', '03:00', '02:30']);
    expect(runs.map((r) => r.utc)).toEqual([
      '2026-03-27T01:30:00.000Z',
      '2026-03-28T01:30:00.000Z',
      '2026-03-29T01:00:00.000Z',
      '2026-03-30T00:30:00.000Z',
    ]);
  });

  it('Europe/Prague, 02:30 daily across the fall-back overlap: the repeated 02:30 runs once', async () => {
    const runs = await simulate('30 2 * * *', 'Europe/Prague', '2026-10-23T00:00:00Z', '2026-10-27T00:00:00Z');
    expect(runs.map((r) => r.day)).toEqual(['2026-10-23', '2026-10-24', '2026-10-25', '2026-10-26']);
    expect(runs.every((r) => r.time === '02:30')).toBe(true);
    // 25 October: 02:30 CEST (00:30Z) runs; 02:30 CET an hour later (01:30Z) does not.
    expect(runs[2]!.utc).toBe('2026-10-25T00:30:00.000Z');
  });

  it('America/New_York, 02:30 daily across the spring-forward gap: one run per local day', async () => {
    const runs = await simulate('30 2 * * *', 'America/New_York', '2026-03-06T12:00:00Z', '2026-03-10T12:00:00Z');
    expect(runs.map((r) => r.day)).toEqual(['2026-03-07', '2026-03-08', '2026-03-09', '2026-03-10']);
    expect(runs.map((r) => r.time)).toEqual(['02:30', '03:00', '02:30', '02:30']);
  });

  it('America/New_York, 01:30 daily across the fall-back overlap: the repeated 01:30 runs once', async () => {
    const runs = await simulate('30 1 * * *', 'America/New_York', '2026-10-30T12:00:00Z', '2026-11-03T12:00:00Z');
    expect(runs.map((r) => r.day)).toEqual(['2026-10-31', '2026-11-01', '2026-11-02', '2026-11-03']);
    expect(runs.every((r) => r.time === '01:30')).toBe(true);
    expect(runs.map((r) => r.utc)).toEqual([
      '2026-10-31T05:30:00.000Z',
      '2026-11-01T05:30:00.000Z', // 01:30 EDT; 01:30 EST (06:30Z) is the same local slot again
      '2026-11-02T06:30:00.000Z',
      '2026-11-03T06:30:00.000Z',
    ]);
  });
});

describe('the clock fence in Postgres', () => {
  const fenceToken = async () => (await orm.em.fork().findOneOrFail(Fence, CLOCK_FENCE)).token;

  it('records the token on every run and refuses a tick of a deposed leader on any replica', async () => {
    const now = new Date();
    const [a] = await createJobs(1, { cron: '0 * * * *', nextRunAt: new Date(now.getTime() - 1000) });
    const first = await enqueueDueJobs(orm, { now, region: REGION, fencingToken: 1000 });
    expect(first).toMatchObject({ enqueued: 1, stale: false });
    expect((await runsOf([a!]))[0]!.fencingToken).toBe(1000);
    expect(await fenceToken()).toBe(1000);

    // The second replica has never seen token 1000 in memory; the fence in Postgres refuses 999 anyway.
    const [b] = await createJobs(1, { cron: '0 * * * *', nextRunAt: new Date(now.getTime() - 1000) });
    const stale = await enqueueDueJobs(orm2, { now, region: REGION, fencingToken: 999 });
    expect(stale).toMatchObject({ stale: true, claimed: 0, enqueued: 0 });
    expect(await runsOf([b!])).toHaveLength(0);
    expect(await fenceToken()).toBe(1000);
    // The same leader's next tick (same token) goes through.
    expect(await enqueueDueJobs(orm2, { now, region: REGION, fencingToken: 1000 })).toMatchObject({ enqueued: 1 });
  });

  it('stops a deposed leader between batches once a newer tick raised the fence', async () => {
    const now = new Date();
    await createJobs(6, { cron: '0 * * * *', nextRunAt: new Date(now.getTime() - 1000) });
    let raised: Promise<boolean> | undefined;
    const old = await enqueueDueJobs(orm, {
      now,
      region: REGION,
      fencingToken: 2000,
      batchSize: 2,
      onClaim: async () => {
        if (raised) return;
        // While the first batch holds the fence, the new leader's tick arrives on the other replica: its raise
        // waits for that batch to commit.
        raised = raiseFence(orm2.em.fork(), CLOCK_FENCE, 2001);
        await waitFor(
          async () => {
            const [row] = await orm.em
              .fork()
              .execute<{ n: string }[]>(
                `select count(*) as n from pg_stat_activity where wait_event_type = 'Lock' and query like '%into fences%'`,
              );
            return Number(row!.n) === 1;
          },
          { what: 'the new leader raising the fence waits for the batch holding it' },
        );
      },
      // The old leader's next batch starts once the new tick was admitted: it must be refused.
      beforeBatch: async (n) => {
        if (n === 2) expect(await raised).toBe(true);
      },
    });
    expect(old).toMatchObject({ stale: true, batches: 1, enqueued: 2 });
    expect(await fenceToken()).toBe(2001);
    const fresh = await enqueueDueJobs(orm2, { now, region: REGION, fencingToken: 2001 });
    expect(fresh).toMatchObject({ stale: false, enqueued: 4 });
  });

  it('admits a restarted token series only after the fence went unconfirmed for the reset period', async () => {
    const em = orm.em.fork();
    expect(await raiseFence(em, 'reset-test', 50)).toBe(true);
    expect(await raiseFence(em, 'reset-test', 1)).toBe(false);
    // Not confirmed for longer than resetAfterMs (here: any time at all): the lower series is admitted.
    await em.execute(`update fences set updated_at = now() - interval '1 hour' where name = 'reset-test'`);
    expect(await raiseFence(em, 'reset-test', 1)).toBe(true);
    expect((await orm.em.fork().findOneOrFail(Fence, 'reset-test')).token).toBe(1);
  });
});

describe('system service', () => {
  it('turns an enqueue-due-jobs tick into a report task on REPORT_TASKS through the outbox, fenced', async () => {
    await using server = await privateNatsServer();
    const dbUrl = await freshDatabaseUrl('due_jobs_svc');
    const region = 'e2e';
    const svc = await runService(system, {
      env: {
        NATS_URL: server.url,
        PORT: '0',
        LOG_LEVEL: 'silent',
        DATABASE_URL: dbUrl,
        PPC_REGION: region,
        PPC_SECRET_KEY: `k1:${generateKey()}`,
      },
      handleSignals: false,
    });
    const db = await openDatabase(dbUrl);
    const nc = await connectNats({ servers: server.url, name: 'due-jobs-test' });
    try {
      const js = jetstream(nc);
      const jsm: JetStreamManager = await jetstreamManager(nc);
      const account = await seedAccount(db); // the service migrated the fresh database at start
      const due = () => new Date(Date.now() - 60_000);
      let seq = 0;
      const tick = (fencingToken: number, schedule = 'enqueue-due-jobs') => {
        const t = new Date(Date.now() + ++seq); // a distinct slot per tick (its msg id)
        return publish(js, SystemTaskMsg, {
          schedule,
          scheduledAt: t.toISOString(),
          firedAt: t.toISOString(),
          fencingToken,
          leader: 'clock-test',
          payload: {},
        });
      };
      const systemTasksDrained = () =>
        waitFor(async () => (await jsm.streams.info(streams.systemTasks.name)).state.messages === 0, {
          what: 'SYSTEM_TASKS acknowledged',
        });
      const taskFor = async (jobId: string) => {
        const [run] = await db.em.fork().find(Run, { job: jobId });
        if (!run) return null;
        const msg = await jsm.streams
          .getMessage(streams.reportTasks.name, { last_by_subj: `tasks.report.${region}.campaigns` })
          .catch(() => null);
        return msg && msg.header.get(headers.msgId) === `run.${run.id}` ? { run, msg } : null;
      };

      const [first] = await createJobs(1, { cron: '0 * * * *', nextRunAt: due(), account }, db);
      await tick(5);
      const { run, msg } = await waitFor(() => taskFor(first!), { what: 'report task for the due job' });
      expect(msg.header.get(headers.type)).toBe('report.task.v1');
      expect(msg.json<ReportTask>()).toMatchObject({ runId: run.id, jobId: first, trigger: 'schedule', region });
      expect(run.trigger).toBe('schedule');
      const nextRunAt = (await jobById(first!, db)).nextRunAt!;
      expect(nextRunAt.getTime()).toBeGreaterThan(Date.now());
      await waitFor(async () => (await db.em.fork().findOneOrFail(OutboxMessage, { run: run.id })).sentAt, {
        what: 'outbox row marked sent',
      });

      // A tick from a deposed leader (lower fencing token) is acknowledged and does nothing.
      const [second] = await createJobs(1, { cron: '0 * * * *', nextRunAt: due(), account }, db);
      await tick(3);
      await systemTasksDrained();
      expect(await db.em.fork().count(Run, { job: second! })).toBe(0);
      // Ticks of schedules it does not know are acknowledged without effect, and are not dead-lettered.
      await tick(5, 'not-a-system-schedule');
      await systemTasksDrained();
      expect(await db.em.fork().count(Run, { job: second! })).toBe(0);
      const dlq = await jsm.streams.info(streams.deadLetters.name);
      expect(dlq.state.messages).toBe(0);
      // The current leader's next tick enqueues it.
      await tick(5);
      await waitFor(() => taskFor(second!), { what: 'report task for the second job' });
      expect(await db.em.fork().count(Run, { job: { $in: [first!, second!] } })).toBe(2);
    } finally {
      await svc.stop();
      await nc.drain();
      await db.close(true);
    }
  });
});
