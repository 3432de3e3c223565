/**
 * Test and benchmark harness: clock replicas as real child processes (so SIGKILL and SIGSTOP are
 * real), an observer of leader events, and readers of the ticks a stream holds.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connectNats, type NatsConnection } from '@ppc/lib/nats';
import { waitFor } from '@ppc/lib/testing';
import { type ClockLeader, type ClockTick, kvBuckets, streams, subjects } from '@ppc/proto';
import type { ScheduleSpec } from '../schedules.ts';

const MAIN = fileURLToPath(new URL('../main.ts', import.meta.url));

export interface ReplicaOptions {
  natsUrl: string;
  id: string;
  leaseTtlMs: number;
  schedules: ScheduleSpec[];
  /** Extra environment (PPC_* variables of the clock). */
  env?: Record<string, string>;
}

export interface LogLine {
  msg: string;
  time: string;
  [k: string]: unknown;
}

export class Replica {
  readonly id: string;
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(o: ReplicaOptions) {
    this.id = o.id;
    this.child = spawn(process.execPath, [MAIN], {
      env: {
        PATH: process.env.PATH ?? '',
        NATS_URL: o.natsUrl,
        PORT: '0',
        LOG_LEVEL: 'info',
        PPC_INSTANCE_ID: o.id,
        PPC_CLOCK_LEASE_TTL_MS: String(o.leaseTtlMs),
        PPC_CLOCK_SYSTEM_SCHEDULES: 'false',
        PPC_CLOCK_SCHEDULES: JSON.stringify(o.schedules),
        ...o.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buf = '';
    this.child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          // not a log line
        }
        nl = buf.indexOf('\n');
      }
    });
    this.child.stderr?.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  logged(msg: string): LogLine | undefined {
    return this.lines.find((l) => l.msg === msg);
  }

  /** Resolves with the HTTP port once the service says it is ready. */
  async ready(timeoutMs = 15_000): Promise<number> {
    const line = await waitFor(
      () => {
        if (!this.running) throw new Error(`replica ${this.id} exited: ${this.stderr}`);
        return this.logged('clock ready');
      },
      { what: `replica ${this.id} ready`, timeoutMs },
    );
    return line.port as number;
  }

  async metrics(): Promise<string> {
    const port = await this.ready();
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    return res.text();
  }

  /** The value of a metric without labels (or with the given label text), or undefined. */
  async metric(name: string, labels = ''): Promise<number | undefined> {
    const text = await this.metrics();
    const re = new RegExp(`^${name}(\\{[^}]*\\})?\\s+(\\S+)$`, 'm');
    for (const line of text.split('\n')) {
      const m = re.exec(line);
      if (m && (!labels || (m[1] ?? '').includes(labels))) return Number(m[2]);
    }
    return undefined;
  }

  async signal(sig: NodeJS.Signals): Promise<void> {
    if (!this.running) return;
    this.child.kill(sig);
    if (sig === 'SIGKILL' || sig === 'SIGTERM' || sig === 'SIGINT') await this.exited;
  }
}

export interface ObservedLeader extends ClockLeader {
  receivedAt: number;
}

/** A connection that records every leader event as it arrives and reads the lease and the ticks. */
export class Observer {
  readonly nc: NatsConnection;
  readonly jsm: JetStreamManager;
  readonly events: ObservedLeader[] = [];

  private constructor(nc: NatsConnection, jsm: JetStreamManager) {
    this.nc = nc;
    this.jsm = jsm;
    const sub = nc.subscribe(subjects.clockLeader);
    void (async () => {
      for await (const m of sub) this.events.push({ ...(m.json() as ClockLeader), receivedAt: Date.now() });
    })();
  }

  static async connect(natsUrl: string): Promise<Observer> {
    const nc = await connectNats({ servers: natsUrl, name: 'clock-observer' });
    const o = new Observer(nc, await jetstreamManager(nc));
    await nc.flush();
    return o;
  }

  /** The first election event after index `from` whose leader is not in `except`. */
  async nextLeader(
    opts: { from?: number; except?: string[]; timeoutMs?: number } = {},
  ): Promise<ObservedLeader & { leader: string; index: number }> {
    const from = opts.from ?? 0;
    return waitFor(
      () => {
        for (let i = from; i < this.events.length; i++) {
          const e = this.events[i];
          if (e?.leader && !(opts.except ?? []).includes(e.leader)) return { ...e, leader: e.leader, index: i };
        }
        return undefined;
      },
      { what: 'a new leader', timeoutMs: opts.timeoutMs ?? 15_000, intervalMs: 5 },
    );
  }

  /** The lease holder as the KV bucket says (null when no lease exists). */
  async leaseHolder(): Promise<string | null> {
    const kv = await new Kvm(this.nc).open(kvBuckets.clockLease.bucket);
    const e = await kv.get('leader');
    if (e?.operation !== 'PUT') return null;
    return e.json<{ instanceId: string }>().instanceId;
  }

  /** Every tick the stream holds for a schedule, in stream order. */
  async ticks(schedule: string, target: 'system' | 'cluster' = 'system'): Promise<Array<ClockTick & { seq: number }>> {
    const stream = target === 'system' ? streams.systemTasks.name : streams.clusterTasks.name;
    const subject = target === 'system' ? subjects.systemTask(schedule) : subjects.clusterTask(schedule);
    const info = await this.jsm.streams.info(stream).catch(() => null);
    if (!info || info.state.messages === 0) return [];
    const out: Array<ClockTick & { seq: number }> = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await this.jsm.streams.getMessage(stream, { seq }).catch(() => null);
      if (m && m.subject === subject) out.push({ ...(m.json() as ClockTick), seq });
    }
    return out;
  }

  async close(): Promise<void> {
    await this.nc.drain().catch(() => {});
  }
}

/** Fire times (ms) the stream holds more than once, and the ones missing between the first and last. */
export function tickGaps(ticks: readonly ClockTick[], everyMs: number): { duplicates: number[]; missing: number[] } {
  const counts = new Map<number, number>();
  for (const t of ticks) {
    const at = Date.parse(t.scheduledAt);
    counts.set(at, (counts.get(at) ?? 0) + 1);
  }
  const times = [...counts.keys()].sort((a, b) => a - b);
  const duplicates = times.filter((t) => (counts.get(t) ?? 0) > 1);
  const missing: number[] = [];
  const first = times[0];
  const last = times.at(-1);
  if (first !== undefined && last !== undefined) {
    for (let t = first; t <= last; t += everyMs) if (!counts.has(t)) missing.push(t);
  }
  return { duplicates, missing };
}
