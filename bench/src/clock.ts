// `npm run bench -- clock [--kills N] [--handovers N]`: three clock replicas, a 1-per-second schedule
// with catch-up `all`, a 3 s lease; the leader is killed with SIGKILL at random moments and each
// failover timed (kill → the successor's election event). A baseline in the same run hands over with
// SIGTERM (the leader deletes its lease key). Then the stream is checked: every second between the
// first and last tick stored exactly once.
import { setTimeout as sleep } from 'node:timers/promises';
import { Observer, Replica, tickGaps } from '../../services/clock/src/testing/replicas.ts';
import { printFigure, withNatsServer } from './harness.ts';

const LEASE_TTL_MS = 3000;
const SCHEDULE = 'bench-tick';
const EVERY_MS = 1000;

function arg(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(name);
  const v = i >= 0 ? Number(args[i + 1]) : fallback;
  if (!Number.isInteger(v) || v < 0) throw new Error(`${name} expects a non-negative integer`);
  return v;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0) : 0;
};

export async function run(args: string[]): Promise<void> {
  const kills = arg(args, '--kills', 20);
  const handovers = arg(args, '--handovers', 5);
  await withNatsServer(async (server) => {
    const observer = await Observer.connect(server.url);
    const replicas: Replica[] = [];
    const start = (id: string) => {
      const r = new Replica({
        natsUrl: server.url,
        id,
        leaseTtlMs: LEASE_TTL_MS,
        schedules: [{ name: SCHEDULE, target: 'system', everyMs: EVERY_MS, catchUp: 'all' }],
        env: { LOG_LEVEL: 'debug' },
      });
      replicas.push(r);
      return r;
    };
    try {
      for (const id of ['r1', 'r2', 'r3']) start(id);
      await Promise.all(replicas.map((r) => r.ready()));
      let current = await observer.nextLeader();

      const failover = async (signal: 'SIGKILL' | 'SIGTERM', round: number) => {
        // A random moment of the leader's term, so kills land anywhere between two ticks.
        await sleep(200 + Math.random() * 2300);
        const victim = replicas.find((r) => r.id === current.leader && r.running);
        if (!victim) throw new Error(`leader ${current.leader} is not one of ours`);
        const at = Date.now();
        await victim.signal(signal);
        const next = await observer.nextLeader({ from: current.index + 1, timeoutMs: LEASE_TTL_MS + 10_000 });
        start(`${victim.id.split('-')[0]}-${signal === 'SIGKILL' ? 'k' : 't'}${round}`);
        current = next;
        return next.receivedAt - at;
      };

      const killed: number[] = [];
      for (let i = 1; i <= kills; i++) killed.push(await failover('SIGKILL', i));
      const handed: number[] = [];
      for (let i = 1; i <= handovers; i++) handed.push(await failover('SIGTERM', i));

      // Let the last leader fire a couple more, then stop everyone cleanly.
      await sleep(2 * EVERY_MS + 100);
      await Promise.all(replicas.map((r) => r.signal('SIGTERM')));

      const ticks = await observer.ticks(SCHEDULE);
      const { duplicates, missing } = tickGaps(ticks, EVERY_MS);
      const delays = ticks.map((t) => Date.parse(t.firedAt) - Date.parse(t.scheduledAt));
      const deduped = replicas
        .flatMap((r) => r.lines)
        .filter((l) => l.msg === 'tick' && l.outcome === 'duplicate').length;

      printFigure({
        bench: 'clock',
        figure: 'failover_sigkill',
        kills,
        leaseTtlMs: LEASE_TTL_MS,
        p50Ms: pct(killed, 50),
        maxMs: Math.max(...killed),
        targetMaxMs: LEASE_TTL_MS + 1000,
        ok: Math.max(...killed) <= LEASE_TTL_MS + 1000,
      });
      if (handovers > 0) {
        printFigure({
          bench: 'clock',
          figure: 'failover_sigterm_baseline',
          handovers,
          p50Ms: pct(handed, 50),
          maxMs: Math.max(...handed),
        });
      }
      printFigure({
        bench: 'clock',
        figure: 'ticks',
        schedule: `every ${EVERY_MS} ms, catch-up all`,
        stored: ticks.length,
        span: `${ticks[0]?.scheduledAt} .. ${ticks.at(-1)?.scheduledAt}`,
        duplicates: duplicates.length,
        missed: missing.length,
        terms: new Set(ticks.map((t) => t.fencingToken)).size,
        dedupedPublishes: deduped,
        fireDelayP50Ms: pct(delays, 50),
        fireDelayMaxMs: Math.max(...delays),
        ok: duplicates.length === 0 && missing.length === 0,
      });
    } finally {
      await Promise.all(replicas.map((r) => r.signal('SIGKILL')));
      await observer.close();
    }
  });
}
