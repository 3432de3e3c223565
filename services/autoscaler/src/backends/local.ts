/**
 * The single-machine backend: workers are child processes of the autoscaler. Each gets its pool's
 * region, an idle period after which it stops itself, and an instance id chosen here, so the
 * autoscaler can tell a worker still starting (no heartbeat yet) from one that is live. Exits are
 * reaped as they happen; on shutdown every worker gets SIGTERM (it hands its tasks back) and, past
 * the grace period, SIGKILL. The IPC channel makes a worker stop itself if the autoscaler dies.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Logger } from '@ppc/lib/log';
import type { PoolSpec, WorkerService } from '../config.ts';
import type { PoolObservation, ScalingBackend } from './types.ts';

export interface LocalBackendOptions {
  /** The worker's command line for a service (argv[0] is the executable). */
  command(service: WorkerService): string[];
  cwd: string;
  /** Variables every worker gets (NATS_URL, LOG_LEVEL); this process's own non-PPC_ variables are passed too. */
  env: Record<string, string>;
  /** The workers' PPC_IDLE_EXIT_MS. */
  idleExitMs: number;
  log: Logger;
  /** Workers' stdout and stderr: this process's (`inherit`, under npm start) or nowhere. */
  stdio?: 'inherit' | 'ignore';
  /** How long workers may take to stop on close() before they are killed. */
  stopGraceMs?: number;
  /** Told about every reaped worker. */
  onExit?(worker: LocalWorker, code: number | null, signal: NodeJS.Signals | null): void;
}

export interface LocalWorker {
  instanceId: string;
  pool: string;
  pid: number;
  startedAt: number;
  child: ChildProcess;
}

export class LocalBackend implements ScalingBackend {
  readonly name = 'local' as const;
  readonly #o: LocalBackendOptions;
  readonly #workers = new Map<string, LocalWorker>();
  readonly #exits = new Map<string, Promise<void>>();
  readonly #lastStart = new Map<string, number>();
  #seq = 0;
  #reaped = 0;
  #closing = false;

  constructor(o: LocalBackendOptions) {
    this.#o = o;
  }

  /** Workers running now. */
  get workers(): readonly LocalWorker[] {
    return [...this.#workers.values()];
  }

  async observe(pools: readonly PoolSpec[], live: ReadonlySet<string>): Promise<Map<string, PoolObservation>> {
    const out = new Map<string, PoolObservation>(
      pools.map((p) => [p.name, { starting: 0, lastStartAt: this.#lastStart.get(p.name) ?? null }]),
    );
    for (const w of this.#workers.values()) {
      const o = out.get(w.pool);
      if (o && !live.has(w.instanceId)) o.starting += 1;
    }
    return out;
  }

  async start(pool: PoolSpec, count: number): Promise<number> {
    if (this.#closing) return 0;
    let started = 0;
    for (let i = 0; i < count; i++) {
      if (this.#spawn(pool)) started += 1;
    }
    if (started > 0) this.#lastStart.set(pool.name, Date.now());
    return started;
  }

  #spawn(pool: PoolSpec): boolean {
    const o = this.#o;
    this.#seq += 1;
    const instanceId = `${pool.name}-${process.pid}-${this.#seq}-${randomBytes(3).toString('hex')}`;
    const [cmd, ...args] = o.command(pool.service);
    const inherited = Object.entries(process.env).filter(([k]) => !k.startsWith('PPC_'));
    const child = spawn(cmd!, args, {
      cwd: o.cwd,
      env: {
        ...Object.fromEntries(inherited),
        ...o.env,
        PORT: '0',
        PPC_REGION: pool.region,
        PPC_IDLE_EXIT_MS: String(o.idleExitMs),
        PPC_INSTANCE_ID: instanceId,
      },
      stdio: ['ignore', o.stdio ?? 'inherit', o.stdio ?? 'inherit', 'ipc'],
    });
    // The channel must not keep the autoscaler alive; it exists so the worker notices our death.
    child.channel?.unref();
    if (child.pid === undefined) {
      child.once('error', (err) => o.log.error({ pool: pool.name, err: err.message }, 'cannot start a worker'));
      return false;
    }
    const worker: LocalWorker = { instanceId, pool: pool.name, pid: child.pid, startedAt: Date.now(), child };
    this.#workers.set(instanceId, worker);
    const exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        this.#workers.delete(instanceId);
        this.#exits.delete(instanceId);
        this.#reaped += 1;
        const lived = Date.now() - worker.startedAt;
        const fields = { pool: pool.name, instanceId, pid: worker.pid, code, signal, livedMs: lived };
        if (code === 0 || this.#closing) o.log.info(fields, 'worker exited');
        else o.log.warn(fields, 'worker exited abnormally');
        o.onExit?.(worker, code, signal);
        resolve();
      });
    });
    this.#exits.set(instanceId, exited);
    child.once('error', (err) => o.log.error({ pool: pool.name, instanceId, err: err.message }, 'worker error'));
    o.log.info({ pool: pool.name, instanceId, pid: child.pid }, 'worker started');
    return true;
  }

  details(): Record<string, unknown> {
    const byPool: Record<string, number> = {};
    for (const w of this.#workers.values()) byPool[w.pool] = (byPool[w.pool] ?? 0) + 1;
    return { running: byPool, reaped: this.#reaped };
  }

  async close(): Promise<void> {
    this.#closing = true;
    const all = [...this.#workers.values()];
    for (const w of all) w.child.kill('SIGTERM');
    const exits = Promise.all([...this.#exits.values()]);
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([
      exits.then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), this.#o.stopGraceMs ?? 6000);
      }),
    ]);
    clearTimeout(timer);
    if (late) {
      for (const w of this.#workers.values()) w.child.kill('SIGKILL');
      await exits;
    }
  }
}
