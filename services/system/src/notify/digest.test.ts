// The daily digest against the real PostgreSQL and the project's SMTP sink on loopback.
import type { Database } from '@ppc/lib/db';
import { RetryableError } from '@ppc/lib/errors';
import { freePort } from '@ppc/lib/infra';
import type { Mailer } from '@ppc/lib/mail';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  addMembership,
  createJob,
  createOrg,
  createRun,
  createUser,
  depsFor,
  mailerFor,
  notificationRows,
  openTestDatabase,
  testSink,
} from './fixtures/world.ts';
import { keys, sendDigests } from './index.ts';

let orm: Database;
let mail: Awaited<ReturnType<typeof testSink>>;
let mailer: Mailer;

beforeAll(async () => {
  orm = await openTestDatabase('notify_digest');
  mail = await testSink();
  mailer = mailerFor(mail.sink.url);
});
afterAll(async () => {
  mailer?.close();
  await mail?.close();
  await orm?.close(true);
});

const hoursBefore = (t: Date, h: number) => new Date(t.getTime() - h * 3_600_000);

describe('daily digest', () => {
  it("sends each user one digest a day about their organizations' runs, failures linked and escaped", async () => {
    const now = new Date('2026-03-10T07:00:00Z');
    const alpha = await createOrg(orm, 'Alpha & <Sons>');
    const beta = await createOrg(orm, 'Beta');
    const gamma = await createOrg(orm, 'Gamma');
    const both = await createUser(orm, alpha.orgId, 'owner');
    await addMembership(orm, beta.orgId, both.id, 'viewer');
    const alphaOnly = await createUser(orm, alpha.orgId, 'member');
    const quiet = await createUser(orm, gamma.orgId, 'owner'); // Gamma ran nothing
    const outsider = await createUser(orm, alpha.orgId, null); // no membership: sees nothing
    await createJob(orm, gamma);

    const spend = await createJob(orm, alpha, { name: '<b>Spend</b>' });
    const terms = await createJob(orm, beta, { name: 'Search terms' });
    const at = (h: number) => ({ queuedAt: hoursBefore(now, h) });
    await createRun(orm, alpha, spend, { status: 'succeeded', ...at(20) });
    await createRun(orm, alpha, spend, { status: 'succeeded', ...at(10) });
    const alphaFailed = await createRun(orm, alpha, spend, {
      status: 'failed',
      finishedAt: hoursBefore(now, 5),
      errorMessage: 'Quota <i>exceeded</i>',
      ...at(5),
    });
    await createRun(orm, alpha, spend, { status: 'running', ...at(1) });
    const betaFailed = await createRun(orm, beta, terms, {
      status: 'failed',
      finishedAt: hoursBefore(now, 2),
      ...at(2),
    });
    await createRun(orm, beta, terms, { status: 'cancelled', ...at(3) });
    // Outside the window: the day before, and after `now`.
    const old = await createRun(orm, alpha, spend, { status: 'failed', finishedAt: hoursBefore(now, 25), ...at(25) });
    await createRun(orm, alpha, spend, { status: 'succeeded', queuedAt: new Date(now.getTime() + 60_000) });

    const deps = depsFor(orm, mailer);
    const first = await sendDigests(deps, { now });
    expect(first).toMatchObject({ day: '2026-03-10', users: 2, sent: 2, duplicates: 0, failed: 0, unsettled: 0 });

    const [d1, ...more1] = await mail.mailsTo(both.email);
    expect(more1).toEqual([]);
    expect(d1!.subject).toBe('Daily digest 2026-03-10: 6 runs, 2 failed');
    expect(d1!.text).toContain(
      'runs queued from 2026-03-09 07:00 UTC to 2026-03-10 07:00 UTC: 2 succeeded, 2 failed, 1 cancelled, 1 running.',
    );
    expect(d1!.text).toContain('Alpha & <Sons>: 2 succeeded, 1 failed, 1 running');
    expect(d1!.text).toContain('Beta: 1 failed, 1 cancelled');
    expect(d1!.text).toContain(
      '- <b>Spend</b> (Alpha & <Sons>) at 2026-03-10 02:00 UTC: RATE_LIMITED: Quota <i>exceeded</i>',
    );
    expect(d1!.text).toContain(`https://ppc.example.com/app/runs/${alphaFailed}`);
    expect(d1!.text).toContain(`https://ppc.example.com/app/runs/${betaFailed}`);
    expect(d1!.text).not.toContain(old);
    expect(d1!.text).toContain('All runs: https://ppc.example.com/app/runs');
    expect(d1!.html).toContain(
      `<a href="https://ppc.example.com/app/runs/${alphaFailed}">&lt;b&gt;Spend&lt;/b&gt;</a>`,
    );
    expect(d1!.html).toContain('Quota &lt;i&gt;exceeded&lt;/i&gt;');
    expect(d1!.html).toContain('<td>Alpha &amp; &lt;Sons&gt;</td>');
    expect(d1!.html).not.toMatch(/<b>Spend|<i>exceeded|<Sons>/);

    const [d2, ...more2] = await mail.mailsTo(alphaOnly.email);
    expect(more2).toEqual([]);
    expect(d2!.subject).toBe('Daily digest 2026-03-10: 4 runs, 1 failed');
    expect(d2!.text).not.toContain('Beta');
    expect(await mail.mailsTo(quiet.email)).toEqual([]);
    expect(await mail.mailsTo(outsider.email)).toEqual([]);

    // The tick redelivered, and a second tick later the same day: nothing new.
    expect(await sendDigests(deps, { now })).toMatchObject({ users: 2, sent: 0, duplicates: 2 });
    expect(await sendDigests(deps, { now: new Date('2026-03-10T15:00:00Z') })).toMatchObject({
      sent: 0,
      duplicates: 2,
    });
    expect(await mail.mailsTo(both.email)).toHaveLength(1);
    expect(await mail.mailsTo(alphaOnly.email)).toHaveLength(1);
    expect((await notificationRows(orm, keys.digest(both.id, '2026-03-10')))[0]).toMatchObject({
      kind: 'digest',
      status: 'sent',
      recipient: both.email,
    });
  });

  it('lists the most recent failures up to the limit and counts the rest', async () => {
    const now = new Date('2026-04-01T07:00:00Z');
    const org = await createOrg(orm);
    const user = await createUser(orm, org.orgId, 'owner');
    const job = await createJob(orm, org, { name: 'Flaky' });
    const runs = [];
    for (const h of [3, 2, 1]) {
      runs.push(
        await createRun(orm, org, job, {
          status: 'failed',
          finishedAt: hoursBefore(now, h),
          queuedAt: hoursBefore(now, h + 1),
        }),
      );
    }
    expect(await sendDigests(depsFor(orm, mailer, { digestFailuresListed: 2 }), { now })).toMatchObject({ sent: 1 });
    const [d] = await mail.mailsTo(user.email);
    expect(d!.text).toContain(runs[2]!);
    expect(d!.text).toContain(runs[1]!);
    expect(d!.text).not.toContain(runs[0]!);
    expect(d!.text).toContain('- and 1 more');
  });

  it('asks for the tick again while the SMTP server is down, and sends each digest once when it is back', async () => {
    const now = new Date('2026-05-01T07:00:00Z');
    const org = await createOrg(orm);
    const user = await createUser(orm, org.orgId, 'owner');
    await createRun(orm, org, await createJob(orm, org), { status: 'succeeded', queuedAt: hoursBefore(now, 1) });
    const down = mailerFor(`smtp://127.0.0.1:${await freePort()}`);
    try {
      const err = await sendDigests(depsFor(orm, down, { retryDelaysMs: [5000] }), { now }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(RetryableError);
      expect(err).toMatchObject({ retryAfterMs: 5000 });
      expect((await notificationRows(orm, keys.digest(user.id, '2026-05-01')))[0]).toMatchObject({ status: 'pending' });
    } finally {
      down.close();
    }
    expect(await sendDigests(depsFor(orm, mailer), { now, deliveryCount: 2 })).toMatchObject({ sent: 1 });
    expect(await mail.mailsTo(user.email)).toHaveLength(1);
  });
});
