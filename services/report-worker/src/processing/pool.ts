/**
 * The processing threads: a piscina pool with a fixed number of threads (by default one per core the process may
 * use), kept for the worker's life so no report pays for starting them. Tasks get their input batch transferred, not
 * copied. Errors arrive as the typed errors they were thrown as (boundary.ts); an aborted task's thread is terminated
 * by piscina and replaced, so cancelling never waits for a long computation to finish.
 */
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { ReportTypeId } from '@ppc/proto';
import type { PackedBatch } from '../reports/index.ts';
import { type ThreadReply, threadFailure, unwrap } from './boundary.ts';
import type { MapTask, PingTask } from './thread.ts';

export interface ReportPoolOptions {
  /** Threads; default the number of cores this process may use. */
  threads?: number;
  /** Old-generation heap limit of each thread, in MB (a thread over it dies with a permanent error). */
  maxThreadHeapMb?: number;
  /** The thread module; default `thread.ts` next to this file (tests load fixture threads). */
  filename?: URL;
}

export interface ReportPoolStats {
  threads: number;
  /** Tasks waiting for a thread. */
  queued: number;
  completed: number;
  /** Share of the pool's capacity used since it started (piscina's estimate, 0–1). */
  utilization: number;
  /** CPU time the threads spent in tasks since the pool started, in ms. */
  taskCpuMs: number;
}

export class ReportPool {
  readonly threads: number;
  private readonly piscina: Piscina;
  private closed = false;
  private taskCpuMicros = 0;

  constructor(opts: ReportPoolOptions = {}) {
    const threads = opts.threads ?? availableParallelism();
    if (!Number.isInteger(threads) || threads < 1 || threads > 256) {
      throw new RangeError(`threads must be an integer from 1 to 256, got ${threads}`);
    }
    this.threads = threads;
    this.piscina = new Piscina({
      filename: (opts.filename ?? new URL('./thread.ts', import.meta.url)).href,
      minThreads: threads,
      maxThreads: threads,
      // Threads stay for the pool's life; piscina would otherwise retire idle ones after a second.
      idleTimeout: Number.POSITIVE_INFINITY,
      concurrentTasksPerWorker: 1,
      ...(opts.maxThreadHeapMb ? { resourceLimits: { maxOldGenerationSizeMb: opts.maxThreadHeapMb } } : {}),
    });
  }

  /** Loads the thread module in every thread, so the first report does not pay for it (idempotent). */
  async warm(timeoutMs = 10_000): Promise<void> {
    const arrived = new SharedArrayBuffer(4);
    const ping: PingTask = { kind: 'ping', arrived, expected: this.threads, timeoutMs };
    await Promise.all(Array.from({ length: this.threads }, () => this.run(ping)));
  }

  /**
   * Runs one task; resolves with its value or rejects with its typed error. With `signal`, an abort rejects at once
   * with the signal's reason and terminates the thread if the task is running.
   */
  async run<T>(task: unknown, opts: { signal?: AbortSignal; transferList?: ArrayBuffer[] } = {}): Promise<T> {
    return (await this.runTimed<T>(task, opts)).value;
  }

  /** {@link run}, with the CPU time the thread spent on the task. */
  async runTimed<T>(
    task: unknown,
    opts: { signal?: AbortSignal; transferList?: ArrayBuffer[] } = {},
  ): Promise<{ value: T; cpuMs: number }> {
    if (this.closed) throw new Error('report pool is closed');
    let reply: ThreadReply<T>;
    try {
      reply = await this.piscina.run(task, {
        ...(opts.signal ? { signal: opts.signal } : {}),
        ...(opts.transferList ? { transferList: opts.transferList } : {}),
      });
    } catch (err) {
      if (opts.signal?.aborted) throw opts.signal.reason;
      throw threadFailure(err);
    }
    this.taskCpuMicros += reply.cpuMicros;
    return { value: unwrap(reply), cpuMs: reply.cpuMicros / 1000 };
  }

  /**
   * A report's `map` over one batch in a thread, with the thread's CPU time for it. A batch in an ArrayBuffer of its
   * own is moved to the thread (unusable here afterwards); one in shared memory is read in place, and its slot must
   * not be reused before the task settles.
   */
  map<A>(
    report: ReportTypeId,
    queryId: string,
    plan: unknown,
    batch: PackedBatch,
    signal?: AbortSignal,
  ): Promise<{ value: A; cpuMs: number }> {
    const task: MapTask = { kind: 'map', report, queryId, plan, batch };
    const transferList = batch.buffer instanceof ArrayBuffer ? [batch.buffer] : [];
    return this.runTimed<A>(task, { transferList, ...(signal ? { signal } : {}) });
  }

  stats(): ReportPoolStats {
    return {
      threads: this.threads,
      queued: this.piscina.queueSize,
      completed: this.piscina.completed,
      utilization: this.piscina.utilization,
      taskCpuMs: this.taskCpuMicros / 1000,
    };
  }

  /** Terminates the threads; tasks still running are rejected. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.piscina.destroy();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
