// The notifier end to end: run events through a private nats-server (JetStream), the real PostgreSQL, and
// real SMTP servers on loopback (the project's sink, a refusing smtp-server, and none at all).
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { Database } from '@ppc/lib/db';
import { freePort } from '@ppc/lib/infra';
import type { Mailer } from '@ppc/lib/mail';
import { connectNats, ensureConsumer, ensureStream, type NatsConnection, publish } from '@ppc/lib/nats';
import { privateNatsServer, waitFor } from '@ppc/lib/testing';
import { type BodyOf, consumers, RunFailedMsg, RunStartedMsg, RunSucceededMsg, streams } from '@ppc/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRefusingSmtpServer } from '../../../../lib/src/mail/fixtures/refusing-smtp.ts';
import { startRecorder } from '../recorder.ts';
import {
  createJob,
  createOrg,
  createRun,
  createUser,
  depsFor,
  log,
  mailerFor,
  notificationRows,
  type Org,
  openTestDatabase,
  testSink,
} from './fixtures/world.ts';
import {
  type Delivery,
  keys,
  NOTIFIER_CONSUMERS,
  provisionNotifierConsumers,
  recorderFloor,
  startNotifier,
} from './index.ts';

let orm: Database;
let server: Awaited<ReturnType<typeof privateNatsServer>>;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let mail: Awaited<ReturnType<typeof testSink>>;
let mailer: Mailer;
let org: Org;

beforeAll(async () => {
  orm = await openTestDatabase('notifier');
  server = await privateNatsServer();
  nc = await connectNats({ servers: server.url, name: 'notifier-test' });
  jsm = await jetstreamManager(nc);
  js = jetstream(nc);
  await ensureStream(jsm, streams.events);
  await ensureStream(jsm, streams.deadLetters);
  await provisionNotifierConsumers(jsm, log);
  await ensureConsumer(jsm, consumers.systemRecorder);
  mail = await testSink();
  mailer = mailerFor(mail.sink.url);
  org = await createOrg(orm, 'Acme <Agency>');
});
afterAll(async () => {
  mailer?.close();
  await mail?.close();
  await nc?.drain();
  await server?.[Symbol.asyncDispose]();
  await orm?.close(true);
});

const ctx = () => ({ js, jsm, log });

/** Every event of the consumer is acknowledged: nothing pending, nothing waiting for a redelivery. */
const drained = (durable: string) =>
  waitFor(
    async () => {
      const info = await jsm.consumers.info(streams.events.name, durable);
      return info.num_pending === 0 && info.num_ack_pending === 0;
    },
    { what: `${durable} has acknowledged every event`, timeoutMs: 20_000, intervalMs: 50 },
  );
const notifierDrained = async () => {
  for (const c of NOTIFIER_CONSUMERS) await drained(c.durable);
};

const T0 = Date.now() - 60 * 60 * 1000;
const at = (minutes: number) => new Date(T0 + minutes * 60_000).toISOString();

const failed = (runId: string, minutes = 0, message = 'quota exceeded', attempt = 1): BodyOf<typeof RunFailedMsg> => ({
  runId,
  orgId: org.orgId,
  attempt,
  at: at(minutes),
  code: 'RATE_LIMITED',
  message,
  retryable: false,
});
const succeeded = (runId: string, minutes = 0): BodyOf<typeof RunSucceededMsg> => ({
  runId,
  orgId: org.orgId,
  attempt: 1,
  at: at(minutes),
  outputs: [{ kind: 'csv', name: 'report.csv', url: 'https://files.example/report.csv' }],
  rows: { campaigns: 3 },
  timings: { total: 1000 },
});
const started = (runId: string, minutes = 0): BodyOf<typeof RunStartedMsg> => ({
  runId,
  orgId: org.orgId,
  attempt: 1,
  at: at(minutes),
  worker: 'worker-1',
  region: 'local',
});

const mailsTo = async (address: string, count: number) =>
  waitFor(
    async () => {
      const m = await mail.mailsTo(address);
      return m.length >= count ? m : null;
    },
    { what: `${count} mail(s) to ${address}`, timeoutMs: 20_000, intervalMs: 50 },
  );

describe('failure mail', () => {
  it('has a plain-text and an HTML part, links to the run, and escapes user data in HTML', async () => {
    const user = await createUser(orm, org.orgId, 'member');
    const job = await createJob(orm, org, { name: '<script>alert("x")</script> & Co', createdBy: user.id });
    const run = await createRun(orm, org, job, { status: 'running' });
    const notifier = await startNotifier(ctx(), depsFor(orm, mailer));
    try {
      await publish(js, RunFailedMsg, failed(run, 0, 'Quota <b>exceeded</b> for "Acme"'));
      const [m] = await mailsTo(user.email, 1);
      await notifierDrained();
      expect(await mail.mailsTo(user.email)).toHaveLength(1);

      expect(m!.subject).toBe('Failed: <script>alert("x")</script> & Co (Acme <Agency>)');
      expect(m!.from?.value).toEqual([{ name: 'ppc-robot', address: 'robot@example.com' }]);
      const link = `https://ppc.example.com/app/runs/${run}`;
      expect(m!.text).toContain(
        'The job "<script>alert("x")</script> & Co" for the account Demo account in Acme <Agency>',
      );
      expect(m!.text).toContain('Error RATE_LIMITED: Quota <b>exceeded</b> for "Acme"');
      expect(m!.text).toContain(`Run: ${link}`);
      expect(m!.html).toContain(`<a href="${link}">Open the run</a>`);
      expect(m!.html).toContain('<b>&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co</b>');
      expect(m!.html).toContain('Quota &lt;b&gt;exceeded&lt;/b&gt; for &quot;Acme&quot;');
      expect(m!.html).toContain('Acme &lt;Agency&gt;');
      expect(m!.html).not.toMatch(/<script|<b>exceeded/);
      const key = keys.runFailed(run, 1, user.email);
      expect(m!.messageId).toBe(`<${key}@ppc-robot>`);
      expect(m!.headers.get('x-ppc-notification')).toBe(key);
      expect(await notificationRows(orm, `run-failed.${run}`)).toEqual([
        { dedupe_key: key, kind: 'run-failed', recipient: user.email, status: 'sent', error: null, run_id: run },
      ]);
    } finally {
      await notifier.stop(2000);
    }
  });

  it('is sent once when the event is redelivered after the mail went out (crash before the ack)', async () => {
    const user = await createUser(orm, org.orgId, 'member');
    const job = await createJob(orm, org, { createdBy: user.id });
    const run = await createRun(orm, org, job, { status: 'running' });
    const seen: Delivery['outcome'][] = [];
    let crashed = false;
    const notifier = await startNotifier(ctx(), depsFor(orm, mailer), {
      afterDeliver(d) {
        seen.push(d.outcome);
        if (d.outcome === 'sent' && !crashed) {
          crashed = true;
          throw new Error('process died before acknowledging the event');
        }
      },
    });
    try {
      await publish(js, RunFailedMsg, failed(run));
      await waitFor(() => seen.length >= 2, { what: 'the redelivery', timeoutMs: 20_000 });
      await notifierDrained();
      expect(seen).toEqual(['sent', 'duplicate']);
      expect(await mail.mailsTo(user.email)).toHaveLength(1);
    } finally {
      await notifier.stop(2000);
    }
  });

  it('is sent once per recipient when two notifier instances get copies of the same event', async () => {
    const job = await createJob(orm, org, { notify: { recipients: ['Ops@Example.com', 'lead@example.com'] } });
    const run = await createRun(orm, org, job, { status: 'running' });
    const outcomes: Delivery['outcome'][] = [];
    const afterDeliver = (d: Delivery) => {
      outcomes.push(d.outcome);
    };
    // A short lease: the instance that finds the other's claim comes back after it instead of in 2 minutes.
    const deps = depsFor(orm, mailer, { leaseMs: 1500 });
    const a = await startNotifier(ctx(), deps, { afterDeliver, concurrency: 4 });
    const b = await startNotifier(ctx(), deps, { afterDeliver, concurrency: 4 });
    try {
      // The same outcome published three times (a worker republishing after the duplicate window).
      await Promise.all([
        publish(js, RunFailedMsg, failed(run)),
        publish(js, RunFailedMsg, failed(run), { msgId: `copy-1.${run}` }),
        publish(js, RunFailedMsg, failed(run), { msgId: `copy-2.${run}` }),
      ]);
      await mailsTo('ops@example.com', 1);
      await mailsTo('lead@example.com', 1);
      await notifierDrained();
      expect(await mail.mailsTo('ops@example.com')).toHaveLength(1);
      expect(await mail.mailsTo('lead@example.com')).toHaveLength(1);
      expect(outcomes.filter((o) => o === 'sent')).toHaveLength(2);
      expect(outcomes.filter((o) => o === 'duplicate').length).toBeGreaterThanOrEqual(4);
      expect((await notificationRows(orm, `run-failed.${run}`)).map((r) => [r.recipient, r.status]).sort()).toEqual([
        ['lead@example.com', 'sent'],
        ['ops@example.com', 'sent'],
      ]);
    } finally {
      await Promise.all([a.stop(2000), b.stop(2000)]);
    }
  });

  it('is logged as failed and not retried when the SMTP server refuses it (550)', async () => {
    const refusing = await startRefusingSmtpServer(550, 'mailbox unavailable');
    const refusedMailer = mailerFor(refusing.url);
    const user = await createUser(orm, org.orgId, 'member');
    const job = await createJob(orm, org, { createdBy: user.id });
    const run = await createRun(orm, org, job, { status: 'running' });
    const notifier = await startNotifier(ctx(), depsFor(orm, refusedMailer));
    try {
      await publish(js, RunFailedMsg, failed(run));
      const [row] = await waitFor(async () => {
        const rows = await notificationRows(orm, `run-failed.${run}`);
        return rows[0]?.status === 'failed' ? rows : null;
      });
      await notifierDrained();
      expect(row!.error).toMatch(/refused the message at RCPT TO: .*550 mailbox unavailable/);
      expect(refusing.attempts).toEqual([user.email]);
    } finally {
      await notifier.stop(2000);
      refusedMailer.close();
      await refusing.close();
    }
  });

  it('is retried while the SMTP server is down (nak) and delivered once when it is back', async () => {
    const port = await freePort();
    const downMailer = mailerFor(`smtp://127.0.0.1:${port}`);
    const user = await createUser(orm, org.orgId, 'member');
    const job = await createJob(orm, org, { createdBy: user.id });
    const run = await createRun(orm, org, job, { status: 'running' });
    const outcomes: Delivery['outcome'][] = [];
    const notifier = await startNotifier(ctx(), depsFor(orm, downMailer, { retryDelaysMs: [300] }), {
      afterDeliver: (d) => {
        outcomes.push(d.outcome);
      },
    });
    let later: Awaited<ReturnType<typeof testSink>> | undefined;
    try {
      await publish(js, RunFailedMsg, failed(run));
      const [pending] = await waitFor(
        async () => {
          const rows = await notificationRows(orm, `run-failed.${run}`);
          return outcomes.length >= 2 && rows[0]?.status === 'pending' ? rows : null;
        },
        { what: 'two attempts while the server is down' },
      );
      expect(pending!.error).toMatch(/^will retry: SMTP server unavailable \(ECONNREFUSED\)/);
      expect(await mail.mailsTo(user.email)).toHaveLength(0);

      later = await testSink(port);
      await waitFor(async () => (await later!.mailsTo(user.email)).length === 1, {
        what: 'the mail, once the server is up',
      });
      await notifierDrained();
      expect(await later.mailsTo(user.email)).toHaveLength(1);
      expect(outcomes.filter((o) => o === 'sent')).toHaveLength(1);
      expect(outcomes.slice(0, 2)).toEqual(['retry', 'retry']);
      expect((await notificationRows(orm, `run-failed.${run}`))[0]).toMatchObject({ status: 'sent', error: null });
    } finally {
      await notifier.stop(2000);
      downMailer.close();
      await later?.close();
    }
  });
});

describe('recovery mail', () => {
  /**
   * A job's runs: succeeded, failed, succeeded (the recovery), succeeded. Published as events, projected by
   * the recorder and read by the notifier, in the given order.
   */
  async function scenario(order: 'recorder first' | 'notifier first') {
    const user = await createUser(orm, org.orgId, 'member');
    const job = await createJob(orm, org, { name: `Weekly (${order})`, createdBy: user.id });
    const runs = await Promise.all([1, 2, 3, 4].map(() => createRun(orm, org, job)));
    const [r1, r2, r3, r4] = runs as [string, string, string, string];
    const publishAll = async () => {
      for (const [i, r] of runs.entries()) await publish(js, RunStartedMsg, started(r, i * 10));
      await publish(js, RunSucceededMsg, succeeded(r1, 1));
      await publish(js, RunFailedMsg, failed(r2, 11));
      await publish(js, RunSucceededMsg, succeeded(r3, 21));
      await publish(js, RunSucceededMsg, succeeded(r4, 31));
    };
    const deps = depsFor(orm, mailer, { projectionWaitMs: 500 });
    const stops: (() => Promise<void>)[] = [];
    try {
      if (order === 'recorder first') {
        const recorder = await startRecorder(ctx(), orm);
        stops.push(() => recorder.stop(2000));
        await publishAll();
        await drained(consumers.systemRecorder.durable);
        const notifier = await startNotifier(ctx(), deps);
        stops.push(() => notifier.stop(2000));
      } else {
        const notifier = await startNotifier(ctx(), deps);
        stops.push(() => notifier.stop(2000));
        await publishAll();
        // The notifier has had every event before the recorder projected anything, and is waiting for it.
        await waitFor(
          async () => {
            const info = await jsm.consumers.info(streams.events.name, consumers.systemNotifierSucceeded.durable);
            return info.num_pending === 0 && info.num_ack_pending > 0;
          },
          { what: 'the notifier waiting for the recorder' },
        );
        const recorder = await startRecorder(ctx(), orm);
        stops.push(() => recorder.stop(2000));
      }
      await mailsTo(user.email, 2);
      await drained(consumers.systemRecorder.durable);
      await notifierDrained();
      const mails = await mail.mailsTo(user.email);
      expect(mails.map((m) => m.subject).sort()).toEqual([
        `Failed: Weekly (${order}) (Acme <Agency>)`,
        `Recovered: Weekly (${order}) (Acme <Agency>)`,
      ]);
      const recovered = mails.find((m) => m.subject?.startsWith('Recovered'))!;
      expect(recovered.text).toContain('succeeded again');
      expect(recovered.text).toContain('after 1 failed run.');
      expect(recovered.text).toContain(`https://ppc.example.com/app/runs/${r3}`);
      expect(recovered.html).toContain(`<a href="https://ppc.example.com/app/runs/${r3}">`);
      expect((await notificationRows(orm, `run-recovered.${r3}`)).map((r) => r.status)).toEqual(['sent']);
      for (const r of [r1, r4]) expect(await notificationRows(orm, `run-recovered.${r}`)).toEqual([]);
    } finally {
      for (const stop of stops.reverse()) await stop();
    }
  }

  it('is sent on the first success after a failure only, when the recorder projected the events first', async () => {
    await scenario('recorder first');
  });

  it('is sent on the first success after a failure only, when the notifier reads the events first', async () => {
    await scenario('notifier first');
  });
});

describe('job settings', () => {
  it('sends neither failure nor recovery mail when the job turns them off', async () => {
    const user = await createUser(orm, org.orgId, 'owner');
    const job = await createJob(orm, org, { createdBy: user.id, notify: { onFailure: false, onRecovery: false } });
    const before = await createRun(orm, org, job, { status: 'failed', finishedAt: new Date(T0) });
    const run = await createRun(orm, org, job, { status: 'running' });
    const after = await createRun(orm, org, job, { status: 'succeeded', finishedAt: new Date(T0 + 120_000) });
    const notifier = await startNotifier(ctx(), depsFor(orm, mailer));
    // A success is decided once the recorder has caught up with it; in the service both always run.
    const recorder = await startRecorder(ctx(), orm);
    try {
      await publish(js, RunFailedMsg, failed(run, 1));
      await publish(js, RunSucceededMsg, succeeded(after, 2));
      await notifierDrained();
      expect(await mail.mailsTo(user.email)).toEqual([]);
      for (const r of [before, run, after]) {
        expect(await notificationRows(orm, `run-failed.${r}`)).toEqual([]);
        expect(await notificationRows(orm, `run-recovered.${r}`)).toEqual([]);
      }
    } finally {
      await notifier.stop(2000);
      await recorder.stop(2000);
    }
  });
});

describe('consumers', () => {
  it('deliver only failed and succeeded run events to the notifier', async () => {
    const deliveries = async (spec: (typeof NOTIFIER_CONSUMERS)[number]) =>
      (await jsm.consumers.info(streams.events.name, spec.durable)).delivered.consumer_seq;
    await notifierDrained();
    const job = await createJob(orm, org, { notify: { onFailure: false, onRecovery: false } });
    const run = await createRun(orm, org, job, { status: 'running' });
    const failuresBefore = await deliveries(consumers.systemNotifierFailed);
    const successesBefore = await deliveries(consumers.systemNotifierSucceeded);
    const notifier = await startNotifier(ctx(), depsFor(orm, mailer));
    try {
      for (let i = 0; i < 5; i++) {
        await publish(js, RunStartedMsg, { ...started(run, i), worker: `w${i}` }, { msgId: `restart-${i}.${run}` });
      }
      const last = await publish(js, RunFailedMsg, failed(run, 6));
      await waitFor(
        async () =>
          (await jsm.consumers.info(streams.events.name, consumers.systemNotifierFailed.durable)).ack_floor
            .stream_seq >= last.seq,
        { what: 'the failure acknowledged by the notifier' },
      );
      await notifierDrained();
      // One delivery for the failure, none for the five started events, none to the succeeded durable.
      expect(await deliveries(consumers.systemNotifierFailed)).toBe(failuresBefore + 1);
      expect(await deliveries(consumers.systemNotifierSucceeded)).toBe(successesBefore);
    } finally {
      await notifier.stop(2000);
    }
  });

  it('take over where the retired all-events durable left off, and delete it', async () => {
    await using own = await privateNatsServer();
    const onc = await connectNats({ servers: own.url, name: 'notifier-takeover-test' });
    try {
      const ojsm = await jetstreamManager(onc);
      const ojs = jetstream(onc);
      await ensureStream(ojsm, streams.events);
      await ensureConsumer(ojsm, consumers.retiredSystemNotifier);
      const runId = '00000000-0000-4000-8000-000000000001';
      const handled = await publish(ojs, RunFailedMsg, failed(runId, 0, 'handled before the upgrade'));
      await publish(ojs, RunStartedMsg, started(runId, 1));
      const failedAfter = await publish(ojs, RunFailedMsg, failed(runId, 2, 'after', 2));
      const succeededAfter = await publish(ojs, RunSucceededMsg, succeeded(runId, 3));
      // The old notifier handled the first event (ack floor at its sequence), then the upgrade came.
      const old = await ojs.consumers.get(streams.events.name, consumers.retiredSystemNotifier.durable);
      const m = await old.next({ expires: 5000 });
      expect(m?.seq).toBe(handled.seq);
      await m!.ackAck();

      const report = await provisionNotifierConsumers(ojsm, log);
      expect(report).toEqual({
        [consumers.systemNotifierFailed.durable]: 'taken over',
        [consumers.systemNotifierSucceeded.durable]: 'taken over',
      });
      await expect(ojsm.consumers.info(streams.events.name, consumers.retiredSystemNotifier.durable)).rejects.toThrow(
        /consumer not found/,
      );
      // Each new durable holds only its own kind of event past the old floor.
      const pendingOf = async (spec: (typeof NOTIFIER_CONSUMERS)[number]) => {
        const c = await ojs.consumers.get(streams.events.name, spec.durable);
        const msg = await c.next({ expires: 2000 });
        msg?.ack();
        return msg?.seq;
      };
      expect(await pendingOf(consumers.systemNotifierFailed)).toBe(failedAfter.seq);
      expect(await pendingOf(consumers.systemNotifierSucceeded)).toBe(succeededAfter.seq);
      expect((await ojsm.consumers.info(streams.events.name, consumers.systemNotifierFailed.durable)).num_pending).toBe(
        0,
      );

      // A second start (or a second replica) finds the new durables and leaves their position alone.
      const again = await provisionNotifierConsumers(ojsm, log);
      expect(Object.keys(again).sort()).toEqual(NOTIFIER_CONSUMERS.map((c) => c.durable).sort());
      expect(Object.values(again)).not.toContain('taken over');
      const info = await ojsm.consumers.info(streams.events.name, consumers.systemNotifierFailed.durable);
      expect(info.config.opt_start_seq).toBe(handled.seq + 1);
      expect(info.config.filter_subject).toBe('events.run.*.failed');
    } finally {
      await onc.drain();
    }
  });

  it('tell whether the recorder has acknowledged the events up to a sequence, waiting for it a while', async () => {
    const floor = recorderFloor(jsm);
    const job = await createJob(orm, org);
    const run = await createRun(orm, org, job, { status: 'running' });
    const ack = await publish(js, RunStartedMsg, started(run, 0), { msgId: `floor.${run}` });
    // No recorder runs now, so its floor stays below this event, however long one waits.
    const t0 = performance.now();
    expect(await floor.caughtUp(ack.seq, { waitMs: 300 })).toBe(false);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
    // A recorder starting while a success waits lets it through as soon as the event is projected.
    const waiting = floor.caughtUp(ack.seq, { waitMs: 15_000 });
    const recorder = await startRecorder(ctx(), orm);
    try {
      expect(await waiting).toBe(true);
      expect(await floor.caughtUp(ack.seq - 1)).toBe(true);
      const [row] = await orm.em
        .fork()
        .execute<{ worker_instance: string }[]>('select worker_instance from runs where id = ?', [run]);
      expect(row?.worker_instance).toBe('worker-1');
    } finally {
      await recorder.stop(2000);
    }
  });
});
