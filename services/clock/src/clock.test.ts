// Integration tests: clock replicas as child processes against a real nats-server. Each test gets its
// own private nats-server (the lease and state buckets have fixed names, so tests must not share one).
import { Kvm } from '@nats-io/kv';
import { privateNatsServer, waitFor } from '@ppc/lib/testing';
import { type ClockTick, FencingGuard, kvBuckets } from '@ppc/proto';
import { afterEach, describe, expect, it } from 'vitest';
import type { ScheduleSpec } from './schedules.ts';
import { Observer, Replica, tickGaps } from './testing/replicas.ts';

const SECOND = 1000;
const beat = (name = 'beat', catchUp: ScheduleSpec['catchUp'] = 'all'): ScheduleSpec => ({
  name,
  target: 'system',
  everyMs: SECOND,
  catchUp,
});

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn().catch(() => {});
  cleanup = [];
});

async function setup(leaseTtlMs: number, schedules: ScheduleSpec[]) {
  const server = await privateNatsServer();
  const observer = await Observer.connect(server.url);
  const replicas: Replica[] = [];
  cleanup.push(async () => {
    await Promise.all(replicas.map((r) => r.signal('SIGKILL')));
    await observer.close();
    await server[Symbol.asyncDispose]();
  });
  const start = (id: string) => {
    const r = new Replica({ natsUrl: server.url, id, leaseTtlMs, schedules });
    replicas.push(r);
    return r;
  };
  const byId = (id: string) => {
    const r = replicas.findLast((x) => x.id === id && x.running);
    if (!r) throw new Error(`no running replica ${id}`);
    return r;
  };
  /** Replicas whose /metrics say they lead. */
  const leaders = async () => {
    const live = replicas.filter((r) => r.running);
    const flags = await Promise.all(live.map(async (r) => ((await r.metric('clock_leader')) === 1 ? r.id : null)));
    return flags.filter((x): x is string => x !== null);
  };
  return { server, observer, replicas, start, byId, leaders };
}

/** Waits until the stream holds a tick of `schedule` that satisfies `pred`. */
const tickWhere = (o: Observer, schedule: string, pred: (t: ClockTick) => boolean, timeoutMs = 10_000) =>
  waitFor(async () => (await o.ticks(schedule)).find(pred), { what: `a ${schedule} tick`, timeoutMs, intervalMs: 50 });

describe('clock', () => {
  it('elects exactly one of three replicas; after kill -9 another leads within TTL + 1 s; SIGTERM hands over at once', async () => {
    const ttl = 2 * SECOND;
    const c = await setup(ttl, [beat()]);
    const [a, b, d] = [c.start('r1'), c.start('r2'), c.start('r3')];
    await Promise.all([a.ready(), b.ready(), d.ready()]);
    const first = await c.observer.nextLeader();
    expect(await c.leaders()).toEqual([first.leader]);
    expect(await c.observer.leaseHolder()).toBe(first.leader);

    // Leader, next fire time and lease age are in /metrics and in the heartbeat.
    const leader = c.byId(first.leader);
    const metrics = await leader.metrics();
    expect(metrics).toMatch(/^clock_next_fire_timestamp_seconds\{schedule="beat"[^}]*\} \d+$/m);
    expect(metrics).toMatch(new RegExp(`^clock_lease_holder\\{holder="${first.leader}"[^}]*\\} 1$`, 'm'));
    const age = await leader.metric('clock_lease_age_seconds');
    expect(age).toBeGreaterThanOrEqual(0);
    expect(age).toBeLessThan(ttl / 1000);
    const workers = await new Kvm(c.observer.nc).open(kvBuckets.workers.bucket);
    const hb = (await workers.get(`clock.${first.leader}`))?.json<{ details: Record<string, unknown> }>();
    const details = hb?.details ?? {};
    expect(details).toMatchObject({ leader: true, holder: first.leader, leaseTtlMs: ttl });
    expect((details.schedules as Record<string, { next: string }>).beat?.next).toMatch(/^\d{4}-.*Z$/);

    // kill -9: no release, the lease has to expire.
    const killedAt = Date.now();
    await leader.signal('SIGKILL');
    const second = await c.observer.nextLeader({ from: first.index + 1, timeoutMs: ttl + 3 * SECOND });
    expect(second.receivedAt - killedAt).toBeLessThanOrEqual(ttl + SECOND);
    expect(second.previous).toBe(first.leader);
    expect(second.fencingToken).toBeGreaterThan(first.fencingToken);
    expect(await c.leaders()).toEqual([second.leader]);

    // SIGTERM: the leader deletes its key and a follower takes over at once, not after the TTL.
    const termAt = Date.now();
    await c.byId(second.leader).signal('SIGTERM');
    const third = await c.observer.nextLeader({ from: second.index + 1, timeoutMs: ttl + 3 * SECOND });
    expect(third.receivedAt - termAt).toBeLessThan(ttl / 2);
    const released = c.observer.events.find((e) => e.leader === null && e.previous === second.leader);
    expect(released?.fencingToken).toBe(second.fencingToken);
    expect(c.observer.events.indexOf(released!)).toBeLessThan(third.index);
    expect(await c.leaders()).toEqual([third.leader]);
  });

  it('fires every tick exactly once over repeated leader kills, and no deposed leader’s tick is acted upon', async () => {
    const ttl = 1500;
    // Under a loaded suite a takeover has been seen to take 4.8 s (3.2 leases); a bug waits without end.
    const FAR_MORE_THAN_A_LEASE = ttl + 5 * SECOND;
    const c = await setup(ttl, [beat()]);
    for (const id of ['r1', 'r2', 'r3']) c.start(id);
    await Promise.all(c.replicas.map((r) => r.ready()));
    let current = await c.observer.nextLeader();
    const failovers: number[] = [];
    for (let kill = 1; kill <= 4; kill++) {
      // Kill once this leader has fired at least one tick of its own.
      await tickWhere(c.observer, 'beat', (t) => t.fencingToken === current.fencingToken);
      const victim = c.byId(current.leader);
      const killedAt = Date.now();
      await victim.signal('SIGKILL');
      const next = await c.observer.nextLeader({ from: current.index + 1, timeoutMs: FAR_MORE_THAN_A_LEASE });
      failovers.push(next.receivedAt - killedAt);
      c.start(`${victim.id.split('-')[0]}-${kill}`);
      current = next;
    }
    // Every kill led to a takeover (nextLeader would have thrown otherwise). The TTL + 1 s bound is
    // asserted once, in the test above, and measured over 20 kills by `npm run bench -- clock`; here,
    // with the suite's other files loading both cores, only a takeover that waited for far more than
    // one lease would be a bug.
    // The bound is measured from before the SIGKILL, the wait above from after it: the same limit for both.
    expect(Math.max(...failovers)).toBeLessThanOrEqual(FAR_MORE_THAN_A_LEASE);

    // A leader frozen (SIGSTOP) past its lease is deposed; when it wakes it must step down, not fire.
    await tickWhere(c.observer, 'beat', (t) => t.fencingToken === current.fencingToken);
    const frozen = c.byId(current.leader);
    frozen.child.kill('SIGSTOP');
    const frozenAt = Date.now();
    const successor = await c.observer.nextLeader({ from: current.index + 1, timeoutMs: ttl + 3 * SECOND });
    await tickWhere(c.observer, 'beat', (t) => t.fencingToken === successor.fencingToken);
    frozen.child.kill('SIGCONT');
    await waitFor(() => frozen.logged('stepped down'), { what: 'the woken leader to step down' });
    expect(await frozen.metric('clock_leader')).toBe(0);
    // Two more ticks from the successor, then stop everyone cleanly.
    const lastSeen = Date.now();
    await tickWhere(c.observer, 'beat', (t) => Date.parse(t.scheduledAt) > lastSeen + SECOND);
    await Promise.all(c.replicas.map((r) => r.signal('SIGTERM')));

    const ticks = await c.observer.ticks('beat');
    const { duplicates, missing } = tickGaps(ticks, SECOND);
    expect(duplicates).toEqual([]);
    expect(missing).toEqual([]);
    expect(ticks.length).toBeGreaterThanOrEqual(8);
    expect(new Set(ticks.map((t) => t.fencingToken)).size).toBeGreaterThanOrEqual(6);
    // The frozen leader fired nothing after it was frozen.
    expect(ticks.filter((t) => t.leader === frozen.id && Date.parse(t.firedAt) > frozenAt)).toEqual([]);
    // A consumer that fences acts on every scheduled time exactly once.
    const guard = new FencingGuard();
    const acted = ticks.filter((t) => guard.admit(t.fencingToken)).map((t) => t.scheduledAt);
    expect(acted).toEqual(ticks.map((t) => t.scheduledAt));
    expect(new Set(acted).size).toBe(ticks.length);
    // And it would refuse a tick the deposed leader sent late.
    expect(guard.admit(current.fencingToken)).toBe(false);
  });

  it('applies each catch-up policy after an outage of every replica', async () => {
    const ttl = 1500;
    const c = await setup(ttl, [beat('all', 'all'), beat('once', 'once'), beat('skip', 'skip')]);
    const r1 = c.start('r1');
    await r1.ready();
    const first = await c.observer.nextLeader();
    await Promise.all(
      ['all', 'once', 'skip'].map((s) => tickWhere(c.observer, s, (t) => t.fencingToken === first.fencingToken)),
    );
    await r1.signal('SIGKILL');
    const lastFired = async () =>
      Object.fromEntries(
        await Promise.all(
          ['all', 'once', 'skip'].map(async (s) => [
            s,
            Math.max(...(await c.observer.ticks(s)).map((t) => Date.parse(t.scheduledAt))),
          ]),
        ),
      ) as Record<string, number>;
    // The outage: no lease left, and at least three ticks of each schedule went by unfired.
    const latest = Math.max(...Object.values(await lastFired()));
    await waitFor(async () => (await c.observer.leaseHolder()) === null && Date.now() > latest + 3 * SECOND, {
      what: 'the outage',
    });
    const lastBefore = await lastFired();
    c.start('r2');
    const second = await c.observer.nextLeader({ from: first.index + 1 });
    const since = Date.parse(second.at);
    await Promise.all(
      ['all', 'once', 'skip'].map((s) => tickWhere(c.observer, s, (t) => Date.parse(t.scheduledAt) >= since + SECOND)),
    );
    await Promise.all(c.replicas.map((r) => r.signal('SIGTERM')));

    const after = async (s: string) => {
      const ticks = await c.observer.ticks(s);
      const last = lastBefore[s] ?? 0;
      const missed = ticks.filter((t) => Date.parse(t.scheduledAt) > last && Date.parse(t.scheduledAt) < since);
      const onTime = ticks.filter((t) => Date.parse(t.scheduledAt) >= since);
      return { ticks, missed: missed.map((t) => t.scheduledAt), onTime, due: Math.ceil((since - last) / SECOND) - 1 };
    };
    const all = await after('all');
    expect(all.due).toBeGreaterThanOrEqual(3);
    expect(all.missed).toHaveLength(all.due);
    expect(tickGaps(all.ticks, SECOND)).toEqual({ duplicates: [], missing: [] });

    const once = await after('once');
    const latestMissed = new Date(Math.ceil(since / SECOND) * SECOND - SECOND).toISOString();
    expect(once.missed).toEqual([latestMissed]);
    expect(tickGaps(once.onTime, SECOND)).toEqual({ duplicates: [], missing: [] });

    const skip = await after('skip');
    expect(skip.missed).toEqual([]);
    expect(skip.onTime[0]?.scheduledAt).toBe(new Date(Math.ceil(since / SECOND) * SECOND).toISOString());
    expect(tickGaps(skip.onTime, SECOND)).toEqual({ duplicates: [], missing: [] });
  });

  it('keeps firing exactly once through a nats-server restart while leading', async () => {
    const ttl = 1500;
    const c = await setup(ttl, [beat()]);
    c.start('r1');
    c.start('r2');
    await Promise.all(c.replicas.map((r) => r.ready()));
    const first = await c.observer.nextLeader();
    await tickWhere(c.observer, 'beat', (t) => t.fencingToken === first.fencingToken);
    await c.server.restart();
    const restartedAt = Date.now();
    const after = await tickWhere(
      c.observer,
      'beat',
      (t) => Date.parse(t.scheduledAt) > restartedAt + 2 * SECOND,
      ttl + 10 * SECOND,
    );
    expect(await c.leaders()).toEqual([after.leader]);
    await Promise.all(c.replicas.map((r) => r.signal('SIGTERM')));
    const ticks = await c.observer.ticks('beat');
    expect(tickGaps(ticks, SECOND)).toEqual({ duplicates: [], missing: [] });
    expect(ticks.filter((t) => Date.parse(t.scheduledAt) > restartedAt).length).toBeGreaterThanOrEqual(2);
  });

  it('refuses to start with an invalid schedule, naming it', async () => {
    const r = new Replica({
      natsUrl: 'nats://127.0.0.1:1',
      id: 'bad',
      leaseTtlMs: 1500,
      schedules: [beat(), { name: 'broken', target: 'system', cron: '0 25 * * *', catchUp: 'once' }],
    });
    const exit = await r.exited;
    expect(exit.code).toBe(1);
    expect(r.stderr).toMatch(/^clock: schedule "broken" is invalid: cron "0 25 \* \* \*": .*hour/m);
  });
});
