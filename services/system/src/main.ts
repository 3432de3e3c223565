import { migrate, openDatabase, startOutboxRelay } from '@ppc/lib/db';
import { isRetryable, RetryableError } from '@ppc/lib/errors';
import { createMailer } from '@ppc/lib/mail';
import { consume } from '@ppc/lib/nats';
import { baseEnv, connectDatabase, databaseEnv, main, regionEnv, type ServiceDefinition } from '@ppc/lib/service';
import { type KV, Kvm } from '@nats-io/kv';
import type { Logger } from '@ppc/lib/log';
import { recordTaskTime, URLCHECK_TASK_TYPE } from '@ppc/lib/scaling';
import { consumers, FencingGuard, kvBuckets, pools, streams, SystemTaskMsg } from '@ppc/proto';
import { credentialsConfig, credentialsEnv, startCredentialBroker } from './credentials/index.ts';
import { enqueueDueJobs } from './due-jobs.ts';
import {
  type ConnectionRevoked,
  type NotifyDeps,
  notifyConnectionRevoked,
  NOTIFIER_CONSUMERS,
  notifyEnv,
  provisionNotifierConsumers,
  sendDigests,
  startNotifier,
} from './notify/index.ts';
import { startRecorder } from './recorder.ts';
import { syncAccounts } from './sync-accounts/index.ts';

/** `PPC_REGION`: the region whose workers get the tasks this replica enqueues. */
const env = { ...baseEnv({ port: 9103 }), ...databaseEnv, ...regionEnv, ...credentialsEnv, ...notifyEnv };

/** The system schedules this service acts on; other ticks are acknowledged and logged. */
export const HANDLED_SCHEDULES = ['enqueue-due-jobs', 'sync-accounts', 'send-digests'] as const;

/**
 * Finished runs' wall times, folded per pool and task type and written to `task-stats` every couple of seconds as
 * one sample per key: one compare-and-swap per key instead of one per run (replicas write the same keys).
 */
class TaskTimeAggregator {
  readonly #kv: KV;
  readonly #log: Logger;
  #pending = new Map<string, { pool: string; taskType: string; sum: number; n: number; at: Date }>();
  readonly #timer: NodeJS.Timeout;

  constructor(kv: KV, log: Logger, everyMs = 2000) {
    this.#kv = kv;
    this.#log = log;
    this.#timer = setInterval(() => void this.flush(), everyMs);
    this.#timer.unref();
  }

  add(pool: string, taskType: string, durationMs: number, at: Date): void {
    const key = `${pool} ${taskType}`;
    const p = this.#pending.get(key);
    if (p) {
      p.sum += durationMs;
      p.n += 1;
      if (at > p.at) p.at = at;
    } else this.#pending.set(key, { pool, taskType, sum: durationMs, n: 1, at });
  }

  async flush(): Promise<void> {
    const batch = [...this.#pending.values()];
    this.#pending = new Map();
    for (const p of batch) {
      await recordTaskTime(this.#kv, { pool: p.pool, taskType: p.taskType, durationMs: p.sum / p.n, at: p.at }).catch(
        (err: unknown) => this.#log.warn({ err: (err as Error).message, pool: p.pool }, 'task time not recorded'),
      );
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
  }
}

/** Attempts at the mail about a revoked connection before it is given up (logged); the revocation itself stands. */
const REVOKED_MAIL_ATTEMPTS = 6;

/**
 * Runs system tasks from clock ticks (enqueue due jobs, sync account lists, daily digests), relays the outbox to
 * JetStream, records run events into runs, e-mails failures and recoveries, and brokers short-lived ad-platform
 * access tokens. Migrates the database at start.
 */
export const system: ServiceDefinition<typeof env> = {
  name: 'system',
  env,
  resources: () => ({
    streams: [streams.systemTasks, streams.events, streams.reportTasks, streams.urlCheckTasks],
    // The notifier's durables are provisioned in start(): the first start after the split takes over the
    // retired durable's position (see provisionNotifierConsumers).
    consumers: [consumers.system, consumers.systemRecorder],
    kv: [kvBuckets.taskStats],
  }),
  async start(ctx) {
    // Bad credentials config (PPC_SECRET_KEY, half a Google client) stops start-up naming the variable.
    const credentials = credentialsConfig(ctx.config);
    // One round trip first, so a wrong DATABASE_URL stops start-up with a message naming it.
    await (await connectDatabase(ctx.config.databaseUrl, { max: 1 })).end();
    const orm = await openDatabase(ctx.config.databaseUrl);
    ctx.onStop(() => orm.close());
    const applied = await migrate(orm);
    ctx.log.info({ applied: applied.map((m) => m.name) }, applied.length ? 'database migrated' : 'database up to date');

    // Projects run events into runs and job statistics; tracked, so shutdown hands back what is in flight. Each
    // finished run's wall time feeds the autoscaler's task statistics. Pools are per region; runs carry none, so
    // they count toward this replica's region (the one its enqueued tasks go to).
    const taskTimes = new TaskTimeAggregator(await new Kvm(ctx.nc).open(kvBuckets.taskStats.bucket), ctx.log);
    ctx.onStop(() => taskTimes.stop());
    await startRecorder(ctx, orm, {
      onFinished: (run) =>
        taskTimes.add(
          run.kind === 'report' ? pools.reportWorker(ctx.region) : pools.urlChecker(ctx.region),
          run.kind === 'report' ? (run.reportType ?? 'report') : URLCHECK_TASK_TYPE,
          run.durationMs,
          run.finishedAt,
        ),
    });

    // E-mail: a bad SMTP_URL or MAIL_FROM stops start-up here; the server itself may be down (mail waits).
    const mailer = createMailer({ url: ctx.config.smtpUrl, from: ctx.config.mailFrom });
    ctx.onStop(() => mailer.close());
    const notify: NotifyDeps = {
      orm,
      mailer,
      config: { publicUrl: ctx.config.publicUrl },
      log: ctx.log.child({ component: 'notify' }),
      metrics: ctx.metrics,
    };
    await provisionNotifierConsumers(ctx.jsm, ctx.log.child({ component: 'notify' }));
    await startNotifier(ctx, notify);

    // The owner hears of a revoked connection once; a mail server that is down delays the mail, not the broker.
    const mailRevoked = async (event: ConnectionRevoked) => {
      for (let attempt = 1; ; attempt++) {
        try {
          await notifyConnectionRevoked(notify, event);
          return;
        } catch (err) {
          if (!isRetryable(err) || attempt >= REVOKED_MAIL_ATTEMPTS) {
            notify.log.error(
              { err: (err as Error).message, connectionId: event.connectionId },
              'revoked-connection mail given up',
            );
            return;
          }
          const wait = err instanceof RetryableError && err.retryAfterMs ? err.retryAfterMs : 5000 * attempt;
          await new Promise((r) => setTimeout(r, wait));
        }
      }
    };
    const broker = await startCredentialBroker(
      { nc: ctx.nc, orm, log: ctx.log.child({ component: 'credentials' }), config: credentials, metrics: ctx.metrics },
      { onConnectionRevoked: (event) => void mailRevoked(event) },
    );
    ctx.onStop(() => broker.stop());

    // Stop hooks run in reverse: the relay finishes its batch before the ORM closes.
    const relay = startOutboxRelay(orm, ctx.js, {
      onError: (err) => ctx.log.warn({ err: err.message }, 'outbox relay batch failed, retrying'),
    });
    ctx.onStop(() => relay.stop());

    // In-memory per replica: a tick from a deposed clock leader (lower token than one seen) does nothing. The fence
    // in Postgres (due-jobs) enforces the same across replicas where runs are created.
    const fencing = new FencingGuard();
    let lastEnqueue: Record<string, unknown> | undefined;
    let lastSync: Record<string, unknown> | undefined;
    let lastDigests: Record<string, unknown> | undefined;
    ctx.track(
      await consume(
        ctx.js,
        consumers.system,
        [SystemTaskMsg],
        async (tick, hctx) => {
          const log = ctx.log.child({ schedule: tick.schedule, scheduledAt: tick.scheduledAt });
          if (!fencing.admit(tick.fencingToken)) {
            log.warn(
              { fencingToken: tick.fencingToken, highest: fencing.highest, leader: tick.leader },
              'tick from a deposed clock leader (stale fencing token), ignored',
            );
            return;
          }
          // The later of our clock and the tick's slot: a replica whose clock lags still acts on the slot.
          const now = new Date(Math.max(Date.now(), Date.parse(tick.scheduledAt)));
          const started = performance.now();
          switch (tick.schedule) {
            case 'enqueue-due-jobs': {
              const res = await enqueueDueJobs(orm, {
                now,
                region: ctx.region,
                signal: hctx.signal,
                fencingToken: tick.fencingToken,
              });
              if (res.stale)
                log.warn({ fencingToken: tick.fencingToken }, 'tick refused by the clock fence in Postgres');
              if (res.enqueued > 0) relay.kick();
              lastEnqueue = { at: now.toISOString(), ...res, ms: Math.round(performance.now() - started) };
              log[res.claimed > 0 ? 'info' : 'debug'](lastEnqueue, 'due jobs enqueued');
              return;
            }
            case 'sync-accounts': {
              const res = await syncAccounts(orm, { tokens: broker.tokens, log }, { now, signal: hctx.signal });
              lastSync = { at: now.toISOString(), ...res, ms: Math.round(performance.now() - started) };
              log[res.failed + res.revoked > 0 ? 'warn' : 'info'](lastSync, 'accounts synced');
              return;
            }
            case 'send-digests': {
              // The tick's slot, not our clock: a redelivered or caught-up tick covers the same day.
              const res = await sendDigests(notify, {
                now: new Date(tick.scheduledAt),
                signal: hctx.signal,
                deliveryCount: hctx.deliveryCount,
                isLastAttempt: hctx.isLastAttempt,
              });
              lastDigests = { at: tick.scheduledAt, ...res };
              log.info(lastDigests, 'daily digests sent');
              return;
            }
            default:
              log.debug('system schedule not handled; tick acknowledged without effect');
          }
        },
        {
          // Two at once: an hour's account sync must not hold up the next minute's due jobs.
          concurrency: 2,
          log: ctx.log,
          metrics: ctx.metrics,
          watchMaxDeliveries: { nc: ctx.nc, jsm: ctx.jsm },
        },
      ),
    );
    return {
      details: () => ({
        consumers: [
          consumers.system.durable,
          consumers.systemRecorder.durable,
          ...NOTIFIER_CONSUMERS.map((c) => c.durable),
        ],
        handling: [...HANDLED_SCHEDULES],
        fencingToken: fencing.highest,
        lastEnqueue,
        lastSync,
        lastDigests,
        outbox: relay.stats,
        credentials: broker.stats(),
        tokens: broker.tokens.stats(),
        mail: { smtp: mailer.describe, publicUrl: ctx.config.publicUrl },
      }),
    };
  },
};

if (import.meta.main) main(system);
