// `npm run bench -- autoscaler [--pools 50] [--iterations 5000] [--rounds 300]`: the time one evaluation
// takes over 50 pools. A real nats-server holds the pools' consumers with a backlog each, heartbeats of
// the pools' workers and task-time stats (autoscaler/fixtures.ts).
// - evaluation: the evaluation proper, given the pools' consumer infos as the server returned them:
//   live workers from the heartbeats, backlogs, each pool's mean task time, the decisions, and the
//   decision messages validated for publishing. Target ≤ 5 ms p99 (the original system's was 250 ms),
//   judged on wall-clock time; the mean on-CPU time (cpu_mean_ms) is printed beside it, since on a
//   shared machine the wall-clock tail is mostly time spent waiting for a core (see load_average_1m).
// - baseline_decide_only, in the same run: the policy's arithmetic alone for the same 50 pools.
// - evaluation_with_nats: what a tick costs in the service (Autoscaler.evaluate, backend none): one
//   consumer listing per task stream, the evaluation, and the decisions published to EVENTS.
import { loadavg } from 'node:os';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { createLogger } from '@ppc/lib/log';
import { connectNats } from '@ppc/lib/nats';
import { kvBuckets, ScaleDecisionMsg } from '@ppc/proto';
import { Autoscaler } from '../../services/autoscaler/src/autoscaler.ts';
import { NoneBackend } from '../../services/autoscaler/src/backends/none.ts';
import { decide } from '../../services/autoscaler/src/decide.ts';
import { evaluate, scaleDecision } from '../../services/autoscaler/src/evaluate.ts';
import { backlogOf, KvMirror, liveWorkers, parseHeartbeat, parseStat } from '../../services/autoscaler/src/inputs.ts';
import { buildMesh } from './autoscaler/fixtures.ts';
import { printFigure, withNatsServer } from './harness.ts';

const TARGET_P99_MS = 5;

function arg(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(name);
  const v = i >= 0 ? Number(args[i + 1]) : fallback;
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} expects a positive integer`);
  return v;
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

function percentiles(ms: number[], prefix = '') {
  const s = [...ms].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0;
  return {
    [`${prefix}p50_ms`]: round3(at(0.5)),
    [`${prefix}p99_ms`]: round3(at(0.99)),
    [`${prefix}max_ms`]: round3(s[s.length - 1] ?? 0),
  };
}

/**
 * Wall-clock milliseconds of each call, and the mean on-CPU time per call over the whole run. On a
 * shared machine the wall-clock tail is mostly time the process waited for a core; the thread's CPU
 * time (counted in scheduler ticks, so only meaningful summed over many calls) leaves that out.
 */
function time(fn: () => number, n: number) {
  for (let i = 0; i < Math.min(500, n); i++) fn();
  const wall: number[] = [];
  const cpuStart = process.threadCpuUsage();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    fn();
    wall.push(performance.now() - t);
  }
  const cpu = process.threadCpuUsage(cpuStart);
  const w = percentiles(wall);
  return { ...w, cpu_mean_ms: round3((cpu.user + cpu.system) / 1000 / n), wallP99: w.p99_ms as number };
}

export async function run(args: string[]): Promise<void> {
  const poolCount = arg(args, '--pools', 50);
  const iterations = arg(args, '--iterations', 5000);
  const rounds = arg(args, '--rounds', 300);
  await withNatsServer(async (server) => {
    const nc = await connectNats({ servers: server.url, name: 'bench-autoscaler' });
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const mesh = await buildMesh(nc, js, jsm, poolCount);
    const { pools, heartbeats, stats, infos } = mesh;
    const workersBefore = heartbeats.length;
    const observations = new Map(pools.map((p) => [p.name, { starting: 0, lastStartAt: null }]));

    const evaluation = () => {
      const now = Date.now();
      const live = liveWorkers(heartbeats, now, kvBuckets.workers.ttlMs);
      const backlogs = new Map<string, number>();
      pools.forEach((p, i) => {
        backlogs.set(p.name, backlogOf(infos[i]!));
      });
      const evals = evaluate({ pools, backlogs, live: live.byPool, observations, stats, now });
      const at = new Date(now).toISOString();
      let started = 0;
      for (const e of evals) {
        const body = scaleDecision(e, 0, 'none', e.decision.reason, at);
        if (!ScaleDecisionMsg.check(body)) throw new Error(`invalid decision for ${e.pool.name}`);
        started += e.decision.toStart;
      }
      return started;
    };
    const decideOnly = () => {
      const now = Date.now();
      let started = 0;
      pools.forEach((p, i) => {
        started += decide({
          backlog: backlogOf(infos[i]!),
          live: 1,
          starting: 0,
          meanTaskMs: p.defaultTaskMs,
          lastStartAt: null,
          now,
          policy: p.policy,
        }).toStart;
      });
      return started;
    };

    const wanted = evaluation();
    const { wallP99: _b, ...base } = time(decideOnly, iterations);
    const { wallP99, ...pure } = time(evaluation, iterations);
    const load = Math.round(loadavg()[0]! * 10) / 10;
    printFigure({ bench: 'autoscaler', figure: 'baseline_decide_only', pools: pools.length, iterations, ...base });
    printFigure({
      bench: 'autoscaler',
      figure: 'evaluation',
      pools: pools.length,
      workers: workersBefore,
      task_stats: stats.length,
      backlog: infos.reduce((n, i) => n + backlogOf(i), 0),
      workers_to_start: wanted,
      iterations,
      ...pure,
      load_average_1m: load,
      target_p99_ms: TARGET_P99_MS,
      meets_target: wallP99 <= TARGET_P99_MS,
    });

    const kvm = new Kvm(nc);
    const log = createLogger({ service: 'bench-autoscaler', level: 'silent' });
    const hbMirror = await KvMirror.open(await kvm.open(kvBuckets.workers.bucket), parseHeartbeat, { log });
    const statMirror = await KvMirror.open(await kvm.open(kvBuckets.taskStats.bucket), parseStat, { log });
    const scaler = new Autoscaler({
      js,
      jsm,
      pools,
      backend: new NoneBackend(),
      heartbeats: hbMirror,
      stats: statMirror,
      tickIntervalMs: 5000,
      heartbeatFreshMs: kvBuckets.workers.ttlMs,
      log,
    });
    for (let i = 0; i < 20; i++) await scaler.evaluate();
    const withNats: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const t = performance.now();
      await scaler.evaluate();
      withNats.push(performance.now() - t);
    }
    const full = percentiles(withNats);
    printFigure({
      bench: 'autoscaler',
      figure: 'evaluation_with_nats',
      pools: pools.length,
      // One consumer listing per task stream, one publish per decision that says something new.
      consumer_list_requests: new Set(pools.map((p) => p.consumer.stream)).size,
      rounds,
      ...full,
      load_average_1m: Math.round(loadavg()[0]! * 10) / 10,
    });
    hbMirror.stop();
    statMirror.stop();
    await nc.close();
  });
}
