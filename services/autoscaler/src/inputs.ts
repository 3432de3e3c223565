/**
 * What the autoscaler reads each tick: backlogs from consumer info, live workers from the `workers`
 * bucket, recent task times from `task-stats`. The buckets are mirrored in memory by watchers, so a
 * tick costs one consumer listing per task stream and nothing per worker.
 */
import type { ConsumerInfo, JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { Logger } from '@ppc/lib/log';
import { type TaskStat, type WorkerHeartbeat, WorkerHeartbeatMsg } from '@ppc/proto';
import { parseTaskStat } from '@ppc/lib/scaling';
import type { PoolSpec } from './config.ts';

/** Messages waiting for a consumer plus those delivered and not yet acknowledged (being worked on). */
export const backlogOf = (info: Pick<ConsumerInfo, 'num_pending' | 'num_ack_pending'>) =>
  info.num_pending + info.num_ack_pending;

/**
 * Backlog per pool name, from one consumer listing per stream (two requests however many pools, not
 * one `consumers.info` each). A pool whose consumer is missing, or whose stream cannot be listed, is
 * left out and logged: it is not decided this tick.
 */
export async function readBacklogs(
  jsm: JetStreamManager,
  pools: readonly PoolSpec[],
  log?: Logger,
): Promise<Map<string, number>> {
  const byStream = new Map<string, PoolSpec[]>();
  for (const p of pools) byStream.set(p.consumer.stream, [...(byStream.get(p.consumer.stream) ?? []), p]);
  const out = new Map<string, number>();
  await Promise.all(
    [...byStream].map(async ([stream, inStream]) => {
      const infos = new Map<string, ConsumerInfo>();
      try {
        for await (const info of jsm.consumers.list(stream)) infos.set(info.name, info);
      } catch (err) {
        log?.warn({ stream, err: (err as Error).message }, 'cannot list the stream’s consumers');
        return;
      }
      for (const p of inStream) {
        const info = infos.get(p.consumer.durable);
        if (info) out.set(p.name, backlogOf(info));
        else log?.warn({ pool: p.name, consumer: p.consumer.durable }, 'the pool’s consumer does not exist');
      }
    }),
  );
  return out;
}

/** A KV bucket's current values, kept up to date by a watcher. */
export class KvMirror<T> {
  readonly #values = new Map<string, T>();
  #stop: () => void = () => {};
  #revision = 0;

  private constructor() {}

  /**
   * Watches every key and resolves once the bucket's current values are in (or after `readyWithinMs`,
   * logged, so a slow server delays the first evaluation but never blocks start-up).
   */
  static async open<T>(
    kv: KV,
    parse: (value: unknown, key: string) => T | null,
    opts: { log?: Logger; readyWithinMs?: number } = {},
  ): Promise<KvMirror<T>> {
    const m = new KvMirror<T>();
    const empty = (await kv.status()).values === 0;
    const watcher = await kv.watch({ key: '>' });
    m.#stop = () => watcher.stop();
    let markReady: () => void = () => {};
    const ready = new Promise<void>((r) => {
      markReady = r;
    });
    if (empty) markReady();
    void (async () => {
      for await (const e of watcher) {
        m.#revision = e.revision;
        if (e.operation === 'PUT') {
          let value: T | null = null;
          try {
            value = parse(e.json<unknown>(), e.key);
          } catch {}
          if (value === null) m.#values.delete(e.key);
          else m.#values.set(e.key, value);
        } else {
          m.#values.delete(e.key);
        }
        if (e.delta === 0 || e.isUpdate) markReady();
      }
    })().catch((err) => opts.log?.warn({ err: (err as Error).message }, 'bucket watcher ended'));
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([
      ready.then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), opts.readyWithinMs ?? 5000);
      }),
    ]);
    clearTimeout(timer);
    if (late) opts.log?.warn('bucket values not all read in time; going on with what arrived');
    return m;
  }

  values(): IterableIterator<T> {
    return this.#values.values();
  }

  get size(): number {
    return this.#values.size;
  }

  /** The bucket revision last seen (for tests waiting on a write to arrive). */
  get revision(): number {
    return this.#revision;
  }

  stop(): void {
    this.#stop();
  }
}

export const parseHeartbeat = (v: unknown): WorkerHeartbeat | null => (WorkerHeartbeatMsg.check(v) ? v : null);
export const parseStat = (v: unknown): TaskStat | null => parseTaskStat(v);

export interface LiveWorkers {
  /** Live workers per pool name. */
  byPool: Map<string, number>;
  /** Instance ids of every fresh heartbeat, for the backends to tell live from starting. */
  ids: Set<string>;
}

/**
 * Workers per pool from heartbeats no older than `freshMs`. An expired key leaves no event behind,
 * so a heartbeat's own time decides whether its worker still counts.
 */
export function liveWorkers(heartbeats: Iterable<WorkerHeartbeat>, now: number, freshMs: number): LiveWorkers {
  const byPool = new Map<string, number>();
  const ids = new Set<string>();
  for (const hb of heartbeats) {
    if (now - Date.parse(hb.at) > freshMs) continue;
    ids.add(hb.instanceId);
    if (hb.service !== 'report-worker' && hb.service !== 'url-checker') continue;
    const pool = `${hb.service}-${hb.region}`;
    byPool.set(pool, (byPool.get(pool) ?? 0) + 1);
  }
  return { byPool, ids };
}
