/**
 * clock: fires the mesh's schedules as task messages, like Celery beat, but as several replicas with
 * one leader elected through the `clock-lease` KV bucket.
 *
 * Consumes: nothing from streams; watches `clock-lease`, reads and writes `clock-state`.
 * Emits: `tasks.system.<schedule>` (system.task.v1) and `tasks.cluster.<schedule>` (cluster.task.v1)
 * ticks with `Nats-Msg-Id: tick.<schedule>.<scheduledAt>` and the term's fencing token;
 * `events.clock.leader` (clock.leader.v1) on every change of leader.
 */
import { Kvm } from '@nats-io/kv';
import { ConfigError } from '@ppc/lib/errors';
import { loadConfig } from '@ppc/lib/config';
import { publish } from '@ppc/lib/nats';
import { main, type ServiceContext, type ServiceDefinition } from '@ppc/lib/service';
import { ClockLeaderMsg, kvBuckets, streams } from '@ppc/proto';
import { Counter, Gauge } from 'prom-client';
import { type ClockConfig, clockEnv, loadSchedules } from './config.ts';
import { DeposedError, Firer } from './fire.ts';
import { Lease } from './lease.ts';
import type { Schedule } from './schedules.ts';

export { clockEnv, loadSchedules } from './config.ts';

const iso = (t: number | null | undefined) => (t === null || t === undefined ? null : new Date(t).toISOString());

function registerMetrics(ctx: ServiceContext<ClockConfig>, lease: Lease, firer: Firer, schedules: readonly Schedule[]) {
  const registers = [ctx.metrics];
  new Gauge({
    name: 'clock_leader',
    help: '1 while this replica is the leader and fires the schedules',
    registers,
    collect() {
      this.set(lease.isLeader ? 1 : 0);
    },
  });
  new Gauge({
    name: 'clock_lease_holder',
    help: 'The replica holding the lease as this replica sees it (value 1, holder in the label)',
    labelNames: ['holder'],
    registers,
    collect() {
      this.reset();
      const holder = lease.holder;
      if (holder) this.set({ holder }, 1);
    },
  });
  new Gauge({
    name: 'clock_fencing_token',
    help: 'Fencing token (lease revision) of the term this replica leads or last led',
    registers,
    collect() {
      this.set(lease.token);
    },
  });
  new Gauge({
    name: 'clock_lease_age_seconds',
    help: 'Seconds since the lease was last written (renewed); -1 when no lease is known',
    registers,
    collect() {
      const age = lease.ageMs();
      this.set(age === null ? -1 : age / 1000);
    },
  });
  new Gauge({
    name: 'clock_next_fire_timestamp_seconds',
    help: 'Unix time of the next tick of each schedule',
    labelNames: ['schedule'],
    registers,
    collect() {
      const now = Date.now();
      for (const s of schedules) {
        const next = s.next(Math.max(now, firer.lastFired(s.name) ?? now));
        if (next !== null) this.set({ schedule: s.name }, next / 1000);
      }
    },
  });
  new Gauge({
    name: 'clock_last_fired_timestamp_seconds',
    help: 'Unix time of the last tick this replica fired or found recorded, per schedule',
    labelNames: ['schedule'],
    registers,
    collect() {
      for (const s of schedules) {
        const last = firer.lastFired(s.name);
        if (last !== undefined) this.set({ schedule: s.name }, last / 1000);
      }
    },
  });
  const ticks = new Counter({
    name: 'clock_ticks_total',
    help: 'Ticks by outcome: fired (stored), duplicate (dropped by the stream as already stored), skipped (missed, left out by the catch-up policy)',
    labelNames: ['schedule', 'outcome'],
    registers,
  });
  const elections = new Counter({
    name: 'clock_elections_total',
    help: 'Terms this replica has won',
    registers,
  });
  return { ticks, elections };
}

export const clock: ServiceDefinition<typeof clockEnv> = {
  name: 'clock',
  env: clockEnv,
  resources: (config) => {
    // Validated here too, so a bad schedule stops start-up before anything is written.
    loadSchedules(config);
    return {
      streams: [streams.systemTasks, streams.clusterTasks, streams.events],
      kv: [{ ...kvBuckets.clockLease, ttlMs: config.leaseTtlMs }, kvBuckets.clockState],
    };
  },
  async start(ctx) {
    const { config, log, js, instanceId } = ctx;
    const schedules = loadSchedules(config);
    const kvm = new Kvm(ctx.nc);
    const lease = new Lease({
      kv: await kvm.open(kvBuckets.clockLease.bucket),
      instanceId,
      ttlMs: config.leaseTtlMs,
      log,
    });
    let metrics: ReturnType<typeof registerMetrics> | undefined;
    const firer = new Firer({
      js,
      state: await kvm.open(kvBuckets.clockState.bucket),
      schedules,
      instanceId,
      log,
      isValid: () => lease.isValid(),
      onTick: (schedule, outcome, count) => metrics?.ticks.inc({ schedule, outcome }, count),
    });
    metrics = registerMetrics(ctx, lease, firer, schedules);

    /** `at` is the moment leadership changed: for an election, the term's start (`since`). */
    const announce = (leader: string | null, previous: string | null, token: number, at: number, id: string) =>
      publish(
        js,
        ClockLeaderMsg,
        { leader, previous, fencingToken: token, at: new Date(at).toISOString() },
        { msgId: id, timeoutMs: 2000, retries: 1 },
      )
        .then(() => undefined)
        .catch((err) => log.warn({ err: (err as Error).message }, 'cannot publish the leader event'));

    let term: AbortController | undefined;
    let running: Promise<void> = Promise.resolve();
    lease.onChange((c) => {
      if (c.kind === 'elected') {
        metrics?.elections.inc();
        void announce(instanceId, c.previous, c.token, c.since, `clock-leader.${c.token}`);
        const ac = new AbortController();
        term = ac;
        running = firer.runTerm(c.token, c.since, ac.signal).catch((err) => {
          log.error({ err: (err as Error).message }, 'leader cannot go on; resigning');
          if (err instanceof DeposedError || !ac.signal.aborted) lease.resign((err as Error).message);
        });
      } else {
        term?.abort();
      }
    });

    ctx.onStop(async () => {
      term?.abort();
      await running;
      const wasLeader = lease.isLeader;
      const token = lease.token;
      // Said before the key goes, so the successor's event is always the later one.
      if (wasLeader) await announce(null, instanceId, token, Date.now(), `clock-leader.${token}.released`);
      await lease.stop({ release: true });
    });

    await lease.start();
    log.info({ schedules: schedules.map((s) => `${s.name}: ${s.describe}, catch-up ${s.catchUp}`) }, 'clock started');

    return {
      details: () => {
        const now = Date.now();
        return {
          leader: lease.isLeader,
          holder: lease.holder,
          fencingToken: lease.token,
          leaseAgeMs: lease.ageMs(),
          leaseTtlMs: config.leaseTtlMs,
          schedules: Object.fromEntries(
            schedules.map((s) => {
              const last = firer.lastFired(s.name);
              return [s.name, { next: iso(s.next(Math.max(now, last ?? now))), lastFired: iso(last) }];
            }),
          ),
        };
      },
    };
  },
};

if (import.meta.main) {
  // A bad schedule or variable stops start-up with a message naming it, before NATS is even dialled.
  try {
    loadSchedules(loadConfig(clockEnv, process.env));
  } catch (err) {
    const msg = err instanceof ConfigError ? `configuration error: ${err.message}` : (err as Error).message;
    process.stderr.write(`clock: ${msg}\n`);
    process.exit(1);
  }
  main(clock);
}
