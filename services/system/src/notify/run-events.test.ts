// Failure and recovery notifications called directly (no nats): who gets them, how the notification log's
// claims behave under concurrency and after a crash, and how a recovery is decided from the runs table.
// Real PostgreSQL and the project's SMTP sink on loopback.
import type { Database } from '@ppc/lib/db';
import { ConfigError, RetryableError } from '@ppc/lib/errors';
import { freePort } from '@ppc/lib/infra';
import type { Mailer } from '@ppc/lib/mail';
import type { BodyOf, RunFailedMsg, RunSucceededMsg } from '@ppc/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createJob,
  createOrg,
  createRun,
  createUser,
  depsFor,
  mailerFor,
  notificationRows,
  type Org,
  openTestDatabase,
  testSink,
  unique,
} from './fixtures/world.ts';
import {
  type Delivery,
  keys,
  notifyRunFailed,
  notifyRunSucceeded,
  parseNotifySettings,
  resolveNotifierConfig,
  type RunEventMeta,
} from './index.ts';

let orm: Database;
let mail: Awaited<ReturnType<typeof testSink>>;
let mailer: Mailer;
let org: Org;

beforeAll(async () => {
  orm = await openTestDatabase('notify_runs');
  mail = await testSink();
  mailer = mailerFor(mail.sink.url);
  org = await createOrg(orm);
});
afterAll(async () => {
  mailer?.close();
  await mail?.close();
  await orm?.close(true);
});

const meta = (over: Partial<RunEventMeta> = {}): RunEventMeta => ({
  streamSeq: 100,
  deliveryCount: 1,
  isLastAttempt: false,
  ...over,
});
const failed = (runId: string, attempt = 1): BodyOf<typeof RunFailedMsg> => ({
  runId,
  orgId: org.orgId,
  attempt,
  at: new Date().toISOString(),
  code: 'AUTH',
  message: 'token revoked',
  retryable: false,
});
const succeeded = (runId: string, at = new Date()): BodyOf<typeof RunSucceededMsg> => ({
  runId,
  orgId: org.orgId,
  attempt: 1,
  at: at.toISOString(),
  outputs: [],
  rows: {},
  timings: { total: 1 },
});
const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000);
const rejection = async (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (err: unknown) => err,
  );

describe('recipients', () => {
  it("are the job's valid addresses, else its creator while a member, else the organization's owners", async () => {
    const owners = [await createUser(orm, org.orgId, 'owner'), await createUser(orm, org.orgId, 'owner')];
    await createUser(orm, org.orgId, 'viewer'); // viewers and members are not owners
    const creator = await createUser(orm, org.orgId, 'member');
    const leaver = await createUser(orm, (await createOrg(orm)).orgId, 'member'); // not a member here
    const team = `${unique('team')}@example.com`;
    const cases: [Record<string, unknown>, string | null, string[]][] = [
      [{ recipients: [team.toUpperCase(), 'not an address', 42, team] }, creator.id, [team]],
      [{}, creator.id, [creator.email]],
      [{ recipients: [] }, leaver.id, owners.map((o) => o.email).sort()],
      [{}, null, owners.map((o) => o.email).sort()],
    ];
    for (const [notify, createdBy, expected] of cases) {
      const job = await createJob(orm, org, { notify, createdBy });
      const run = await createRun(orm, org, job, { status: 'running' });
      const res = await notifyRunFailed(depsFor(orm, mailer), failed(run), meta());
      expect(res.deliveries.map((d) => [d.recipient, d.outcome]).sort()).toEqual(expected.map((e) => [e, 'sent']));
    }
    expect(await mail.mailsTo(team)).toHaveLength(1);
    expect(await mail.mailsTo(creator.email)).toHaveLength(1);
    for (const o of owners) expect(await mail.mailsTo(o.email)).toHaveLength(2);
  });

  it('reads the notify settings defensively, naming what it ignored', () => {
    expect(parseNotifySettings(undefined)).toEqual({
      onFailure: true,
      onRecovery: true,
      recipients: undefined,
      problems: [],
    });
    expect(parseNotifySettings({ onFailure: 'no', onRecovery: false, recipients: ['a@example.com', 'x'] })).toEqual({
      onFailure: true,
      onRecovery: false,
      recipients: ['a@example.com'],
      problems: [
        { field: 'notify.onFailure', reason: 'expected true or false' },
        { field: 'notify.recipients[1]', reason: 'is not an e-mail address like name@example.com' },
      ],
    });
    expect(parseNotifySettings({ recipients: 'a@example.com' }).problems).toEqual([
      { field: 'notify.recipients', reason: 'expected a list of e-mail addresses' },
    ]);
    expect(parseNotifySettings([]).problems).toEqual([{ field: 'notify', reason: 'expected an object' }]);
  });

  it('validates the notifier config, naming the field', () => {
    expect(resolveNotifierConfig({ publicUrl: 'https://ppc.example.com/' }).publicUrl).toBe('https://ppc.example.com');
    for (const [config, field] of [
      [{ publicUrl: 'ftp://ppc.example.com' }, 'publicUrl'],
      [{ publicUrl: 'https://ppc.example.com?x=1' }, 'publicUrl'],
      [{ publicUrl: 'https://ppc.example.com', leaseMs: 0 }, 'leaseMs'],
      [{ publicUrl: 'https://ppc.example.com', retryDelaysMs: [1000, -1] }, 'retryDelaysMs[1]'],
    ] as const) {
      let err: unknown;
      try {
        resolveNotifierConfig(config);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect(err).toMatchObject({ variable: field });
    }
  });
});

describe('claims in the notification log', () => {
  it('let exactly one of many concurrent senders send', async () => {
    const user = await createUser(orm, org.orgId, 'member');
    const job = await createJob(orm, org, { createdBy: user.id });
    const run = await createRun(orm, org, job, { status: 'running' });
    const outcomes: Delivery['outcome'][] = [];
    const deps = depsFor(orm, mailer);
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, () =>
        notifyRunFailed(deps, failed(run), meta({ afterDeliver: (d) => void outcomes.push(d.outcome) })),
      ),
    );
    expect(outcomes.filter((o) => o === 'sent')).toHaveLength(1);
    expect(outcomes.filter((o) => o !== 'sent').every((o) => o === 'duplicate' || o === 'in-progress')).toBe(true);
    // Those that found the claim still held come back later rather than assume it was sent.
    for (const r of results.filter((r) => r.status === 'rejected')) {
      expect((r as PromiseRejectedResult).reason).toBeInstanceOf(RetryableError);
    }
    expect(await mail.mailsTo(user.email)).toHaveLength(1);
  });

  it('hold a crashed sender’s claim for one lease, then let the next delivery take it over and send once', async () => {
    const user = await createUser(orm, org.orgId, 'member');
    const job = await createJob(orm, org, { createdBy: user.id });
    const run = await createRun(orm, org, job, { status: 'running' });
    const key = keys.runFailed(run, 1, user.email);
    const leaseMs = 60_000;
    // What a sender that died after claiming leaves behind.
    await orm.em.fork().execute(
      `insert into notification_log (id, organization_id, dedupe_key, kind, recipient, run_id, status)
         values (gen_random_uuid(), ?, ?, 'run-failed', ?, ?, 'pending')`,
      [org.orgId, key, user.email, run],
    );
    const deps = depsFor(orm, mailer, { leaseMs });
    const held = await rejection(notifyRunFailed(deps, failed(run), meta()));
    expect(held).toBeInstanceOf(RetryableError);
    const wait = (held as RetryableError).retryAfterMs!;
    expect(wait).toBeGreaterThan(leaseMs - 10_000);
    expect(wait).toBeLessThanOrEqual(leaseMs + 250);
    expect(await mail.mailsTo(user.email)).toEqual([]);

    await orm.em
      .fork()
      .execute(`update notification_log set created_at = now() - interval '61 seconds' where dedupe_key = ?`, [key]);
    const taken = await notifyRunFailed(deps, failed(run), meta({ deliveryCount: 2 }));
    expect(taken.deliveries.map((d) => d.outcome)).toEqual(['sent']);
    const again = await notifyRunFailed(deps, failed(run), meta({ deliveryCount: 3 }));
    expect(again.deliveries.map((d) => d.outcome)).toEqual(['duplicate']);
    expect(await mail.mailsTo(user.email)).toHaveLength(1);
    expect((await notificationRows(orm, key))[0]).toMatchObject({ status: 'sent', error: null });
  });

  it('record the failure instead of retrying when the server is still down on the last delivery', async () => {
    const down = mailerFor(`smtp://127.0.0.1:${await freePort()}`);
    const user = await createUser(orm, org.orgId, 'member');
    const job = await createJob(orm, org, { createdBy: user.id });
    const run = await createRun(orm, org, job, { status: 'running' });
    try {
      const first = await rejection(
        notifyRunFailed(depsFor(orm, down, { retryDelaysMs: [5000, 60_000] }), failed(run), meta({ deliveryCount: 2 })),
      );
      expect(first).toBeInstanceOf(RetryableError);
      expect((first as RetryableError).retryAfterMs).toBe(60_000);
      const last = await notifyRunFailed(
        depsFor(orm, down),
        failed(run),
        meta({ deliveryCount: 10, isLastAttempt: true }),
      );
      expect(last.deliveries.map((d) => d.outcome)).toEqual(['failed']);
      const [row] = await notificationRows(orm, `run-failed.${run}`);
      expect(row).toMatchObject({ status: 'failed' });
      expect(row!.error).toMatch(/^gave up, server still unavailable: SMTP server unavailable \(ECONNREFUSED\)/);
    } finally {
      down.close();
    }
  });
});

describe('deciding from the runs table', () => {
  it('sends no failure mail for a failed event that lost to an earlier outcome of the same attempt', async () => {
    const user = await createUser(orm, org.orgId, 'member');
    const job = await createJob(orm, org, { createdBy: user.id });
    const run = await createRun(orm, org, job, { status: 'succeeded', finishedAt: minutesAgo(1) });
    await orm.em.fork().execute('update runs set last_event_seq = 50 where id = ?', [run]);
    const later = await notifyRunFailed(depsFor(orm, mailer), failed(run), meta({ streamSeq: 60 }));
    expect(later).toMatchObject({ action: 'skipped', reason: 'attempt 1 had already succeeded' });
    expect(await mail.mailsTo(user.email)).toEqual([]);
    // Earlier in the stream than the success the table shows: the recorder will make the failure win.
    const earlier = await notifyRunFailed(depsFor(orm, mailer), failed(run), meta({ streamSeq: 40 }));
    expect(earlier.deliveries.map((d) => d.outcome)).toEqual(['sent']);
  });

  it('announces a recovery after the failures since the previous success, ignoring cancelled runs', async () => {
    const user = await createUser(orm, org.orgId, 'member');
    const job = await createJob(orm, org, { createdBy: user.id, name: 'Daily spend' });
    await createRun(orm, org, job, { status: 'succeeded', finishedAt: minutesAgo(50) });
    await createRun(orm, org, job, { status: 'failed', finishedAt: minutesAgo(40) });
    await createRun(orm, org, job, { status: 'failed', finishedAt: minutesAgo(30) });
    await createRun(orm, org, job, { status: 'cancelled', finishedAt: minutesAgo(20) });
    const run = await createRun(orm, org, job, { status: 'succeeded', finishedAt: minutesAgo(10) });
    const res = await notifyRunSucceeded(depsFor(orm, mailer), succeeded(run, minutesAgo(10)), meta());
    expect(res.deliveries.map((d) => d.outcome)).toEqual(['sent']);
    const [m] = await mail.mailsTo(user.email);
    expect(m!.subject).toMatch(/^Recovered: Daily spend/);
    expect(m!.text).toContain('after 2 failed runs.');

    // The same success again, and the next one: nothing more.
    await notifyRunSucceeded(depsFor(orm, mailer), succeeded(run, minutesAgo(10)), meta());
    const next = await createRun(orm, org, job, { status: 'succeeded', finishedAt: minutesAgo(5) });
    expect(await notifyRunSucceeded(depsFor(orm, mailer), succeeded(next, minutesAgo(5)), meta())).toMatchObject({
      action: 'skipped',
      reason: 'not a recovery: the previous finished run did not fail',
    });
    expect(await mail.mailsTo(user.email)).toHaveLength(1);
  });

  it('waits for the recorder to project a success before deciding, up to the last delivery', async () => {
    const user = await createUser(orm, org.orgId, 'member');
    const job = await createJob(orm, org, { createdBy: user.id });
    await createRun(orm, org, job, { status: 'failed', finishedAt: minutesAgo(30) });
    const run = await createRun(orm, org, job, { status: 'running' });
    const deps = depsFor(orm, mailer, { projectionWaitMs: 700 });
    const waiting = await rejection(notifyRunSucceeded(deps, succeeded(run, minutesAgo(1)), meta()));
    expect(waiting).toBeInstanceOf(RetryableError);
    expect(waiting).toMatchObject({ code: 'NOTIFY_WAITING_FOR_RECORDER', retryAfterMs: 700 });
    // The recorder's ack floor, when the notifier can see it, is what counts.
    const behind = await rejection(
      notifyRunSucceeded(deps, succeeded(run, minutesAgo(1)), meta({ recorderCaughtUp: async (seq) => seq <= 99 })),
    );
    expect(behind).toBeInstanceOf(RetryableError);
    const last = await notifyRunSucceeded(deps, succeeded(run, minutesAgo(1)), meta({ isLastAttempt: true }));
    expect(last.deliveries.map((d) => d.outcome)).toEqual(['sent']);
    expect(await mail.mailsTo(user.email)).toHaveLength(1);
  });
});
