// `npm run bench -- transport [--tasks N] [--runs N] [--window N] [--prefetch N]`: what lib's typed
// publish/consume costs over the raw JetStream client. Every path runs against the same
// nats-server, on identically configured fresh streams, with the same publish window and the
// same two consumer processes, and is measured three ways:
//   publish-only  publish every task (bounded window of outstanding acks), nobody consuming;
//   consume-only  the two consumer processes drain that backlog;
//   end-to-end    consumers running, first publish until every task is acked (the headline).
// A third path, rawHeaders (see Mode), tells the wire format's share of typed's cost from lib's.
// The order of the paths rotates from run to run, after an unrecorded warm-up.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, headers as natsHeaders } from '@nats-io/transport-node';
import { connectNats, type NatsConnection, provision, publish } from '@ppc/lib/nats';
import { headers } from '@ppc/proto';
import { printFigure, withNatsServer } from './harness.ts';
import { benchResources, type Command, FIXED_TRACEPARENT, type Mode, type Report } from './transport/shared.ts';

const CONSUMER_SCRIPT = fileURLToPath(new URL('./transport/consumer.ts', import.meta.url));
const CONSUMERS = 2;
const TARGET_RATIO = 0.8;
const MODES: readonly Mode[] = ['raw', 'rawHeaders', 'typed'];
const WARMUP_TASKS = 2000;
const PHASE_TIMEOUT_MS = 60_000;
// USER_HZ: the unit of /proc/<pid>/stat times, 100 on every Linux architecture we run on.
const CLOCK_TICKS_PER_S = 100;

interface Options {
  tasks: number;
  runs: number;
  /** Most publish acks outstanding at once, in every path. */
  window: number;
  /** Per consumer process: raw consume()'s max_messages, typed consume's concurrency. */
  prefetch: number;
}

/** msgs/s of each phase of one measurement, and CPU µs per task end-to-end by process. */
interface Sample {
  publishOnly: number;
  consumeOnly: number;
  endToEnd: number;
  /** Publish rate while the consumers run (the publish part of end-to-end). */
  publishUnderLoad: number;
  publisherCpuUs: number;
  consumersCpuUs: number;
  /** NaN where /proc is not there to ask. */
  serverCpuUs: number;
}

const log = (line: string) => process.stderr.write(`transport: ${line}\n`);
const rate = (n: number, sinceMs: number, untilMs = performance.now()) => n / ((untilMs - sinceMs) / 1000);
const encoder = new TextEncoder();

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: {
      tasks: { type: 'string', default: '20000' },
      runs: { type: 'string', default: '5' },
      window: { type: 'string', default: '256' },
      prefetch: { type: 'string', default: '64' },
    },
  });
  const int = (name: keyof Options, v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`--${name}: expected an integer >= 1, got ${v}`);
    return n;
  };
  return {
    tasks: int('tasks', values.tasks),
    runs: int('runs', values.runs),
    window: int('window', values.window),
    prefetch: int('prefetch', values.prefetch),
  };
}

interface Child {
  proc: ChildProcess;
  total: number;
  cpuMicros: number;
  waiting: { type: Report['type']; resolve: () => void; reject: (err: Error) => void }[];
}

/** The consumer processes, commanded over IPC; they serve every path, so all get the same warm JIT. */
class ConsumerPool {
  readonly #children: Child[];
  #onAcked: (() => void) | undefined;
  #onFailure = new Set<(err: Error) => void>();
  #closing = false;

  private constructor(children: Child[]) {
    this.#children = children;
    for (const c of children) {
      c.proc.on('message', (r: Report) => this.#receive(c, r));
      c.proc.on('exit', (code, signal) => {
        if (!this.#closing) this.#fail(new Error(`consumer ${c.proc.pid} exited (${signal ?? code})`));
      });
    }
  }

  static async spawn(url: string, count: number): Promise<ConsumerPool> {
    const children = Array.from({ length: count }, () => ({
      proc: spawn(process.execPath, [CONSUMER_SCRIPT, url], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }),
      total: 0,
      cpuMicros: 0,
      waiting: [],
    }));
    const pool = new ConsumerPool(children);
    await pool.#fromEach('connected', 30_000);
    return pool;
  }

  /**
   * Starts every process consuming `name`; the returned promise resolves with the time the
   * processes' acks together reached `expected`.
   */
  async start(mode: Mode, name: string, prefetch: number, expected: number): Promise<{ allAcked: Promise<number> }> {
    for (const c of this.#children) c.total = 0;
    const allAcked = this.#whenAcked(expected);
    allAcked.catch(() => {}); // awaited by the caller; this only keeps an early failure from going unhandled
    this.#send({ cmd: 'start', mode, name, prefetch });
    await this.#fromEach('started', 10_000);
    return { allAcked };
  }

  /** Stops consuming; resolves with the acks the processes made since start and the CPU they used. */
  async stop(): Promise<{ acked: number; cpuMicros: number }> {
    this.#send({ cmd: 'stop' });
    await this.#fromEach('stopped', 10_000);
    const sum = (k: 'total' | 'cpuMicros') => this.#children.reduce((n, c) => n + c[k], 0);
    return { acked: sum('total'), cpuMicros: sum('cpuMicros') };
  }

  /** Closing the IPC channel tells each process to drain and exit; a stuck one is killed. */
  async close(): Promise<void> {
    this.#closing = true;
    await Promise.all(
      this.#children.map(async ({ proc }) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return;
        const exited = new Promise((resolve) => proc.once('exit', resolve));
        if (proc.connected) proc.disconnect();
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }),
    );
  }

  #send(cmd: Command): void {
    for (const c of this.#children) c.proc.send(cmd);
  }

  #receive(c: Child, r: Report): void {
    if (r.type === 'error') {
      this.#fail(new Error(`consumer ${c.proc.pid}: ${r.message}`));
      return;
    }
    if (r.type === 'acked' || r.type === 'stopped') c.total = r.total;
    if (r.type === 'stopped') c.cpuMicros = r.cpuMicros;
    if (r.type === 'acked') this.#onAcked?.();
    const i = c.waiting.findIndex((w) => w.type === r.type);
    if (i >= 0) c.waiting.splice(i, 1)[0]!.resolve();
  }

  #fail(err: Error): void {
    for (const c of this.#children) for (const w of c.waiting.splice(0)) w.reject(err);
    for (const f of this.#onFailure) f(err);
  }

  async #fromEach(type: Report['type'], timeoutMs: number): Promise<void> {
    await Promise.all(
      this.#children.map(
        (c) =>
          new Promise<void>((resolve, reject) => {
            const timer = setTimeout(
              () => reject(new Error(`consumer ${c.proc.pid}: no ${type} in ${timeoutMs} ms`)),
              timeoutMs,
            );
            c.waiting.push({
              type,
              resolve: () => {
                clearTimeout(timer);
                resolve();
              },
              reject: (err) => {
                clearTimeout(timer);
                reject(err);
              },
            });
          }),
      ),
    );
  }

  #whenAcked(expected: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const done = (err?: Error) => {
        clearTimeout(timer);
        this.#onAcked = undefined;
        this.#onFailure.delete(done);
        if (err) reject(err);
      };
      const timer = setTimeout(() => {
        const totals = this.#children.map((c) => c.total).join('+');
        done(new Error(`only ${totals} of ${expected} acked after ${PHASE_TIMEOUT_MS} ms`));
      }, PHASE_TIMEOUT_MS);
      this.#onFailure.add(done);
      // Timestamped here, on the report that completes the count, not when the caller resumes.
      this.#onAcked = () => {
        if (this.#children.reduce((sum, c) => sum + c.total, 0) < expected) return;
        const at = performance.now();
        done();
        resolve(at);
      };
    });
  }
}

interface Bench {
  serverPid: number | undefined;
  nc: NatsConnection;
  /** lib's connection (connectNats) for typed; the client's own defaults (connect) for the raw paths. */
  js: { typed: JetStreamClient; raw: JetStreamClient };
  jsm: JetStreamManager;
  pool: ConsumerPool;
  opts: Options;
}

/** Publishes task i of stream `name` and resolves at its ack. */
function publisherFor(b: Bench, mode: Mode, name: string): (i: number) => Promise<unknown> {
  const r = benchResources(name);
  const body = (i: number) => ({ id: `${name}-${i}`, n: i });
  // The raw paths still serialise a body per task: the baseline is "send a JSON task", not "resend bytes".
  const payload = (i: number) => encoder.encode(JSON.stringify(body(i)));
  switch (mode) {
    case 'raw':
      return (i) => b.js.raw.publish(r.subject, payload(i));
    case 'rawHeaders':
      return (i) => {
        const h = natsHeaders();
        h.set(headers.type, r.Task.type);
        h.set(headers.traceparent, FIXED_TRACEPARENT);
        return b.js.raw.publish(r.subject, payload(i), { headers: h, msgID: `task.${name}-${i}` });
      };
    case 'typed':
      return (i) => publish(b.js.typed, r.Task, body(i));
  }
}

/** Publishes tasks 0..n-1 with at most `window` publish acks outstanding; resolves at the last ack. */
async function publishAll(b: Bench, mode: Mode, name: string, n: number): Promise<void> {
  const one = publisherFor(b, mode, name);
  let next = 0;
  const lane = async () => {
    while (next < n) await one(next++);
  };
  await Promise.all(Array.from({ length: Math.min(b.opts.window, n) }, lane));
}

async function freshStream(b: Bench, name: string): Promise<void> {
  const r = benchResources(name);
  await provision(b.nc, b.jsm, { streams: [r.stream], consumers: [r.consumer] });
}

/**
 * CPU time (µs) a process has used, from /proc: on a box with few cores the server competes with
 * the clients, so where a path spends CPU explains its rate better than the rate alone.
 */
function processCpuMicros(pid: number | undefined): number {
  try {
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th overall.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS_PER_S;
  } catch {
    return Number.NaN;
  }
}

const ownCpuMicros = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

/** Every task acked on the server too (the work queue is empty), then the stream is dropped. */
async function settleAndDrop(b: Bench, name: string, acked: number, n: number): Promise<void> {
  if (acked !== n) throw new Error(`${name}: consumers acked ${acked} deliveries for ${n} tasks`);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const left = (await b.jsm.streams.info(name)).state.messages;
    if (left === 0) break;
    if (Date.now() > deadline) throw new Error(`${name}: ${left} tasks still in the work queue`);
    await new Promise((r) => setTimeout(r, 20));
  }
  await b.jsm.streams.delete(name);
}

async function measure(b: Bench, mode: Mode, tag: string, n: number): Promise<Sample> {
  const { pool, opts } = b;

  const backlog = `TB_${mode}_${tag}_backlog`.toUpperCase();
  await freshStream(b, backlog);
  let t0 = performance.now();
  await publishAll(b, mode, backlog, n);
  const publishOnly = rate(n, t0);

  t0 = performance.now();
  const drain = await pool.start(mode, backlog, opts.prefetch, n);
  const consumeOnly = rate(n, t0, await drain.allAcked);
  await settleAndDrop(b, backlog, (await pool.stop()).acked, n);

  const live = `TB_${mode}_${tag}_live`.toUpperCase();
  await freshStream(b, live);
  const flow = await pool.start(mode, live, opts.prefetch, n);
  const serverCpu0 = processCpuMicros(b.serverPid);
  const ownCpu0 = ownCpuMicros();
  t0 = performance.now();
  await publishAll(b, mode, live, n);
  const publishUnderLoad = rate(n, t0);
  const endToEnd = rate(n, t0, await flow.allAcked);
  const publisherCpuUs = (ownCpuMicros() - ownCpu0) / n;
  const serverCpuUs = (processCpuMicros(b.serverPid) - serverCpu0) / n;
  const consumers = await pool.stop();
  await settleAndDrop(b, live, consumers.acked, n);

  return {
    publishOnly,
    consumeOnly,
    endToEnd,
    publishUnderLoad,
    publisherCpuUs,
    consumersCpuUs: consumers.cpuMicros / n,
    serverCpuUs,
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const round = (x: number) => Math.round(x);
const round1 = (x: number) => (Number.isFinite(x) ? Math.round(x * 10) / 10 : null);
const snake = (mode: Mode) => mode.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const ratio = (typed: number, raw: number) => Math.round((typed / raw) * 1000) / 1000;

export async function run(args: string[]): Promise<void> {
  const opts = parseOptions(args);
  const samples: Record<Mode, Sample[]> = { raw: [], rawHeaders: [], typed: [] };
  let serverVersion: string | undefined;

  await withNatsServer(async (server) => {
    const nc = await connectNats({ servers: server.url, name: 'bench-transport' });
    const rawNc = await connect({ servers: server.url, name: 'bench-transport-raw' });
    serverVersion = nc.info?.version;
    const pool = await ConsumerPool.spawn(server.url, CONSUMERS);
    try {
      const b: Bench = {
        serverPid: server.pid(),
        nc,
        js: { typed: jetstream(nc), raw: jetstream(rawNc) },
        jsm: await jetstreamManager(nc),
        pool,
        opts,
      };
      for (const mode of MODES) await measure(b, mode, 'warmup', WARMUP_TASKS);
      for (let i = 0; i < opts.runs; i++) {
        // The order rotates each run, so no path always runs first, or on the hotter server.
        const order = MODES.map((_, k) => MODES[(i + k) % MODES.length]!);
        for (const mode of order) {
          const s = await measure(b, mode, `r${i}`, opts.tasks);
          samples[mode].push(s);
          log(
            `run ${i + 1}/${opts.runs} ${mode}: ${JSON.stringify(s, (_k, v) => (typeof v === 'number' ? round1(v) : v))}`,
          );
        }
      }
    } finally {
      await pool.close();
      await nc.drain().catch(() => {});
      await rawNc.drain().catch(() => {});
    }
  });

  // Other work on the box only ever slows a run down, so a rate's best run is its least disturbed
  // one; CPU per task barely moves with disturbance, and its median is the steadier figure.
  const best = (mode: Mode, k: 'publishOnly' | 'consumeOnly' | 'endToEnd') =>
    Math.max(...samples[mode].map((s) => s[k]));
  const pick = (mode: Mode, k: keyof Sample) => median(samples[mode].map((s) => s[k]));
  const perMode = <T>(f: (mode: Mode) => T) => Object.fromEntries(MODES.map((m) => [snake(m), f(m)]));
  const raw = best('raw', 'endToEnd');
  const typed = best('typed', 'endToEnd');
  printFigure({
    bench: 'transport',
    tasks: opts.tasks,
    consumers: CONSUMERS,
    raw_msgs_per_s: round(raw),
    typed_msgs_per_s: round(typed),
    ratio: ratio(typed, raw),
    target_ratio: TARGET_RATIO,
    meets_target: typed / raw >= TARGET_RATIO,
    raw_headers_msgs_per_s: round(best('rawHeaders', 'endToEnd')),
    ratio_to_raw_headers: ratio(typed, best('rawHeaders', 'endToEnd')),
    publish_msgs_per_s: perMode((m) => round(best(m, 'publishOnly'))),
    publish_ratio: ratio(best('typed', 'publishOnly'), best('raw', 'publishOnly')),
    consume_msgs_per_s: perMode((m) => round(best(m, 'consumeOnly'))),
    consume_ratio: ratio(best('typed', 'consumeOnly'), best('raw', 'consumeOnly')),
    cpu_us_per_task: perMode((m) => ({
      publisher: round1(pick(m, 'publisherCpuUs')),
      consumers: round1(pick(m, 'consumersCpuUs')),
      server: round1(pick(m, 'serverCpuUs')),
    })),
    runs_msgs_per_s: perMode((m) => samples[m].map((s) => round(s.endToEnd))),
    runs: opts.runs,
    statistic: 'rates: best run; cpu: median run',
    publish_window: opts.window,
    prefetch_per_consumer: opts.prefetch,
    cpus: availableParallelism(),
    nats_server: serverVersion,
    node: process.version,
  });
}
