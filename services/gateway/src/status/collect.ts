/**
 * The mesh's status as the gateway sees it, from NATS alone: instances from the `workers` KV bucket, the clock
 * leader from its lease, queue depth from the worker pools' consumers, the latest autoscaler decision per pool, and
 * the dead-letter count. Read at most once a second per gateway (every caller of that second shares the read), so
 * the `status` query, its subscription and the `/` page cost the same however many are watching.
 */
import {
  DeliverPolicy,
  type JetStreamApiError,
  JetStreamApiCodes,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import type { Logger } from '@ppc/lib/log';
import {
  ClockLeaderMsg,
  kvBuckets,
  ScaleDecisionMsg,
  streams,
  subjects,
  type ScaleDecision,
  type WorkerHeartbeat,
  WorkerHeartbeatMsg,
} from '@ppc/proto';

export interface InstanceStatus {
  service: string;
  instanceId: string;
  region: string;
  version: string;
  startedAt: Date;
  lastHeartbeatAt: Date;
  inFlight: number;
  ready: boolean;
  /** The heartbeat as written (host, pid, details): for operators' tools, not part of the GraphQL type. */
  heartbeat: WorkerHeartbeat;
}

export interface ServiceStatus {
  service: string;
  instances: number;
  inFlight: number;
  regions: string[];
}

export interface ClockStatus {
  /** Instance id of the replica holding the lease; null when none does. */
  leader: string | null;
  /** Start of the leader's term. */
  since: Date | null;
  /** Last write of the lease (renewals happen every third of its TTL). */
  renewedAt: Date | null;
  /** The term's fencing token, from the last `clock.leader` event of that leader. */
  fencingToken: number | null;
}

export interface QueueStatus {
  pool: string;
  stream: string;
  /** Waiting for a worker. */
  pending: number;
  /** Delivered to a worker, not yet acknowledged (being worked on). */
  ackPending: number;
  backlog: number;
}

export type ScaleDecisionStatus = Omit<ScaleDecision, 'at'> & { at: Date };

export interface MeshStatus {
  at: Date;
  instances: InstanceStatus[];
  services: ServiceStatus[];
  clock: ClockStatus;
  queues: QueueStatus[];
  scaleDecisions: ScaleDecisionStatus[];
  deadLetters: number;
  /** Parts that could not be read this time (their lists are empty). */
  unavailable: string[];
}

export interface StatusSource {
  js: JetStreamClient;
  jsm: JetStreamManager;
  log: Logger;
}

const decoder = new TextDecoder();
const KV_OPERATION = 'KV-Operation';
const kvStream = (bucket: string) => `KV_${bucket}`;
const kvSubject = (bucket: string, key: string) => `$KV.${bucket}.${key}`;
const POOL_CONSUMER = /^(report-worker|url-checker)-/;
const CLOCK_LEASE_KEY = 'leader';

const isStreamMissing = (err: unknown) =>
  (err as JetStreamApiError | undefined)?.code === JetStreamApiCodes.StreamNotFound ||
  /stream not found/i.test((err as Error | undefined)?.message ?? '');

function json(data: Uint8Array): unknown {
  try {
    return JSON.parse(decoder.decode(data));
  } catch {
    return undefined;
  }
}

/** The newest message of every subject matching `filter`; none when the stream does not exist. */
async function lastPerSubject(js: JetStreamClient, stream: string, filter: string): Promise<JsMsg[]> {
  let consumer: Awaited<ReturnType<JetStreamClient['consumers']['get']>>;
  try {
    consumer = await js.consumers.get(stream, {
      filter_subjects: filter,
      deliver_policy: DeliverPolicy.LastPerSubject,
    });
  } catch (err) {
    if (isStreamMissing(err)) return [];
    throw err;
  }
  try {
    const pending = (await consumer.info(true)).num_pending;
    const out: JsMsg[] = [];
    if (pending === 0) return out;
    for await (const m of await consumer.fetch({ max_messages: pending, expires: 2000 })) {
      out.push(m);
      if (m.info.pending === 0) break;
    }
    return out;
  } finally {
    consumer.delete().catch(() => {});
  }
}

async function readInstances(src: StatusSource): Promise<InstanceStatus[]> {
  const bucket = kvBuckets.workers.bucket;
  const msgs = await lastPerSubject(src.js, kvStream(bucket), kvSubject(bucket, '>'));
  const out: InstanceStatus[] = [];
  const now = Date.now();
  for (const m of msgs) {
    if (m.headers?.get(KV_OPERATION)) continue; // DEL or PURGE: a stopped instance
    // The bucket's TTL drops old heartbeats; this covers the moment before the server's expiry pass.
    if (now - m.time.getTime() > kvBuckets.workers.ttlMs) continue;
    const hb = json(m.data);
    if (!WorkerHeartbeatMsg.check(hb)) continue;
    const h = hb as WorkerHeartbeat;
    out.push({
      service: h.service,
      instanceId: h.instanceId,
      region: h.region,
      version: h.version,
      startedAt: new Date(h.startedAt),
      lastHeartbeatAt: new Date(h.at),
      inFlight: h.inFlight,
      ready: h.ready,
      heartbeat: h,
    });
  }
  return out.sort((a, b) => a.service.localeCompare(b.service) || a.instanceId.localeCompare(b.instanceId));
}

function servicesOf(instances: readonly InstanceStatus[]): ServiceStatus[] {
  const by = new Map<string, ServiceStatus>();
  for (const i of instances) {
    const s = by.get(i.service) ?? { service: i.service, instances: 0, inFlight: 0, regions: [] };
    s.instances += 1;
    s.inFlight += i.inFlight;
    if (!s.regions.includes(i.region)) s.regions.push(i.region);
    by.set(i.service, s);
  }
  return [...by.values()].sort((a, b) => a.service.localeCompare(b.service));
}

async function readClock(src: StatusSource): Promise<ClockStatus> {
  const bucket = kvBuckets.clockLease.bucket;
  const [lease, event] = await Promise.all([
    src.jsm.streams
      .getMessage(kvStream(bucket), { last_by_subj: kvSubject(bucket, CLOCK_LEASE_KEY) })
      .catch(() => null),
    src.jsm.streams.getMessage(streams.events.name, { last_by_subj: subjects.clockLeader }).catch(() => null),
  ]);
  const none: ClockStatus = { leader: null, since: null, renewedAt: null, fencingToken: null };
  if (!lease || lease.header?.get(KV_OPERATION)) return none;
  const value = json(lease.data) as { instanceId?: unknown; since?: unknown } | undefined;
  if (typeof value?.instanceId !== 'string') return none;
  const since =
    typeof value.since === 'string' && !Number.isNaN(Date.parse(value.since)) ? new Date(value.since) : null;
  const announced = event ? json(event.data) : undefined;
  const fencingToken =
    ClockLeaderMsg.check(announced) && announced.leader === value.instanceId ? announced.fencingToken : null;
  return { leader: value.instanceId, since, renewedAt: lease.time, fencingToken };
}

async function readQueues(src: StatusSource): Promise<QueueStatus[]> {
  const out: QueueStatus[] = [];
  for (const stream of [streams.reportTasks.name, streams.urlCheckTasks.name]) {
    try {
      for await (const ci of src.jsm.consumers.list(stream)) {
        if (!POOL_CONSUMER.test(ci.name)) continue;
        out.push({
          pool: ci.name,
          stream,
          pending: ci.num_pending,
          ackPending: ci.num_ack_pending,
          backlog: ci.num_pending + ci.num_ack_pending,
        });
      }
    } catch (err) {
      if (!isStreamMissing(err)) throw err;
    }
  }
  return out.sort((a, b) => a.pool.localeCompare(b.pool));
}

async function readScaleDecisions(src: StatusSource): Promise<ScaleDecisionStatus[]> {
  const msgs = await lastPerSubject(src.js, streams.events.name, subjects.allScaleEvents);
  const out: ScaleDecisionStatus[] = [];
  for (const m of msgs) {
    const d = json(m.data);
    if (!ScaleDecisionMsg.check(d)) continue;
    out.push({ ...d, at: new Date(d.at) });
  }
  return out.sort((a, b) => a.pool.localeCompare(b.pool));
}

async function readDeadLetters(src: StatusSource): Promise<number> {
  try {
    return (await src.jsm.streams.info(streams.deadLetters.name)).state.messages;
  } catch (err) {
    if (isStreamMissing(err)) return 0;
    throw err;
  }
}

/** Reads everything once; a part that fails is reported in `unavailable` instead of failing the whole. */
export async function collectStatus(src: StatusSource): Promise<MeshStatus> {
  const unavailable: string[] = [];
  const part = <T>(name: string, p: Promise<T>, fallback: T): Promise<T> =>
    p.catch((err: unknown) => {
      src.log.warn({ part: name, err: (err as Error).message }, 'status part unavailable');
      unavailable.push(name);
      return fallback;
    });
  const [instances, clock, queues, scaleDecisions, deadLetters] = await Promise.all([
    part('instances', readInstances(src), []),
    part('clock', readClock(src), { leader: null, since: null, renewedAt: null, fencingToken: null }),
    part('queues', readQueues(src), []),
    part('scaleDecisions', readScaleDecisions(src), []),
    part('deadLetters', readDeadLetters(src), 0),
  ]);
  return {
    at: new Date(),
    instances,
    services: servicesOf(instances),
    clock,
    queues,
    scaleDecisions,
    deadLetters,
    unavailable: unavailable.sort(),
  };
}

export const STATUS_CACHE_MS = 1000;

/** `collectStatus` shared by every caller within `STATUS_CACHE_MS`; one read in flight at a time. */
export class StatusCache {
  readonly #src: StatusSource;
  readonly #ttlMs: number;
  #value: { at: number; status: Promise<MeshStatus> } | undefined;

  constructor(src: StatusSource, ttlMs = STATUS_CACHE_MS) {
    this.#src = src;
    this.#ttlMs = ttlMs;
  }

  get(): Promise<MeshStatus> {
    const now = Date.now();
    if (this.#value && now - this.#value.at < this.#ttlMs) return this.#value.status;
    const status = collectStatus(this.#src);
    const entry = { at: now, status };
    this.#value = entry;
    // A failed read is not cached: the next caller tries again.
    status.catch(() => {
      if (this.#value === entry) this.#value = undefined;
    });
    return status;
  }
}

const caches = new WeakMap<StatusSource, StatusCache>();

/** The gateway's one status cache (keyed by its deps object). */
export function statusOf(src: StatusSource): Promise<MeshStatus> {
  let cache = caches.get(src);
  if (!cache) {
    cache = new StatusCache(src);
    caches.set(src, cache);
  }
  return cache.get();
}
