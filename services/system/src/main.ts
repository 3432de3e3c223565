import { migrate, openDatabase, startOutboxRelay } from '@ppc/lib/db';
import { startRecorder } from './recorder.ts';
import { consume } from '@ppc/lib/nats';
import {
  attachConsumer,
  baseEnv,
  connectDatabase,
  databaseEnv,
  main,
  regionEnv,
  type ServiceDefinition,
} from '@ppc/lib/service';
import { consumers, FencingGuard, streams, SystemTaskMsg } from '@ppc/proto';
import { enqueueDueJobs } from './due-jobs.ts';

/** `PPC_REGION`: the region whose workers get the tasks this replica enqueues. */
const env = { ...baseEnv({ port: 9103 }), ...databaseEnv, ...regionEnv };
/** Bound but not pulled yet: their messages wait in the stream until their handlers exist. */
const attachedOnly = [consumers.systemNotifier];

/** The system schedules this service acts on; other ticks are acknowledged and logged. */
export const HANDLED_SCHEDULES = ['enqueue-due-jobs'] as const;

/**
 * Runs system tasks (for now `enqueue-due-jobs`) from clock ticks, relays the outbox to JetStream and
 * records run events into runs.
 * Migrates the database at start.
 */
export const system: ServiceDefinition<typeof env> = {
  name: 'system',
  env,
  resources: () => ({
    streams: [streams.systemTasks, streams.events, streams.reportTasks, streams.urlCheckTasks],
    consumers: [consumers.system, consumers.systemRecorder, ...attachedOnly],
  }),
  async start(ctx) {
    // One round trip first, so a wrong DATABASE_URL stops start-up with a message naming it.
    await (await connectDatabase(ctx.config.databaseUrl, { max: 1 })).end();
    const orm = await openDatabase(ctx.config.databaseUrl);
    ctx.onStop(() => orm.close());
    const applied = await migrate(orm);
    ctx.log.info({ applied: applied.map((m) => m.name) }, applied.length ? 'database migrated' : 'database up to date');
    const attached = await Promise.all(attachedOnly.map((c) => attachConsumer(ctx.jsm, c)));
    // Projects run events into runs and job statistics; tracked, so shutdown hands back what is in flight.
    await startRecorder(ctx, orm);

    // Stop hooks run in reverse: the relay finishes its batch before the ORM closes.
    const relay = startOutboxRelay(orm, ctx.js, {
      onError: (err) => ctx.log.warn({ err: err.message }, 'outbox relay batch failed, retrying'),
    });
    ctx.onStop(() => relay.stop());

    // In-memory per replica: a tick from a deposed clock leader (lower token than one seen) does nothing.
    const fencing = new FencingGuard();
    let lastEnqueue: Record<string, unknown> | undefined;
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
          if (tick.schedule !== 'enqueue-due-jobs') {
            log.debug('system schedule not handled yet; tick acknowledged without effect');
            return;
          }
          // The later of our clock and the tick's slot: a replica whose clock lags still enqueues the slot.
          const now = new Date(Math.max(Date.now(), Date.parse(tick.scheduledAt)));
          const started = performance.now();
          const res = await enqueueDueJobs(orm, { now, region: ctx.region, signal: hctx.signal });
          if (res.enqueued > 0) relay.kick();
          lastEnqueue = { at: now.toISOString(), ...res, ms: Math.round(performance.now() - started) };
          log[res.claimed > 0 ? 'info' : 'debug'](lastEnqueue, 'due jobs enqueued');
        },
        {
          concurrency: 1,
          log: ctx.log,
          metrics: ctx.metrics,
          watchMaxDeliveries: { nc: ctx.nc, jsm: ctx.jsm },
        },
      ),
    );
    return {
      details: () => ({
        consumers: [consumers.system.durable, consumers.systemRecorder.durable, ...attached.map((a) => a.durable)],
        handling: [...HANDLED_SCHEDULES],
        fencingToken: fencing.highest,
        lastEnqueue,
        outbox: relay.stats,
      }),
    };
  },
};

if (import.meta.main) main(system);
