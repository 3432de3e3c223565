import {
  AckPolicy,
  type DeliverPolicy,
  type DiscardPolicy,
  type JetStreamManager,
  JetStreamApiCodes,
  JetStreamApiError,
  type RetentionPolicy,
  type StorageType,
  type ConsumerConfig,
  type StreamConfig,
} from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { Objm } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ConsumerSpec, KvSpec, ObjectStoreSpec, StreamSpec } from '@ppc/proto';

const nanos = (ms: number) => ms * 1_000_000;

export function streamConfig(s: StreamSpec): Partial<StreamConfig> & { name: string } {
  return {
    name: s.name,
    subjects: [...s.subjects],
    retention: s.retention as RetentionPolicy,
    storage: s.storage as StorageType,
    discard: s.discard as DiscardPolicy,
    max_age: nanos(s.maxAgeMs),
    max_msgs_per_subject: s.maxMsgsPerSubject,
    max_bytes: s.maxBytes,
    max_msg_size: s.maxMsgSize,
    duplicate_window: nanos(s.duplicateWindowMs),
    num_replicas: s.replicas,
    description: s.description,
  };
}

export function consumerConfig(c: ConsumerSpec): Partial<ConsumerConfig> & { durable_name: string } {
  return {
    durable_name: c.durable,
    filter_subject: c.filterSubject,
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(c.ackWaitMs),
    max_deliver: c.maxDeliver,
    max_ack_pending: c.maxAckPending,
    deliver_policy: c.deliverPolicy as DeliverPolicy,
    description: c.description,
  };
}

export type ProvisionOutcome = 'created' | 'updated' | 'unchanged';
export interface ProvisionReport {
  [resource: string]: ProvisionOutcome;
}

const isNotFound = (err: unknown) =>
  err instanceof JetStreamApiError &&
  (err.code === JetStreamApiCodes.StreamNotFound || err.code === JetStreamApiCodes.ConsumerNotFound);

/** True when every key we set has the same value on the server (the server adds its own defaults). */
function differs(wanted: Record<string, unknown>, actual: Record<string, unknown>): boolean {
  return Object.entries(wanted).some(([k, v]) => JSON.stringify(actual[k] ?? null) !== JSON.stringify(v ?? null));
}

export async function ensureStream(jsm: JetStreamManager, spec: StreamSpec): Promise<ProvisionOutcome> {
  const wanted = streamConfig(spec);
  try {
    const info = await jsm.streams.info(spec.name);
    if (!differs(wanted, info.config as unknown as Record<string, unknown>)) return 'unchanged';
    await jsm.streams.update(spec.name, wanted);
    return 'updated';
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.streams.add(wanted);
    return 'created';
  }
}

export async function ensureConsumer(jsm: JetStreamManager, spec: ConsumerSpec): Promise<ProvisionOutcome> {
  const wanted = consumerConfig(spec);
  try {
    const info = await jsm.consumers.info(spec.stream, spec.durable);
    if (!differs(wanted, info.config as unknown as Record<string, unknown>)) return 'unchanged';
    const { durable_name: _d, deliver_policy: _p, ...updatable } = wanted;
    await jsm.consumers.update(spec.stream, spec.durable, updatable);
    return 'updated';
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.consumers.add(spec.stream, wanted);
    return 'created';
  }
}

/** KV and object stores are streams underneath; their config is kept in step the same way. */
async function ensureBackingStream(
  jsm: JetStreamManager,
  name: string,
  wanted: Record<string, unknown>,
  create: () => Promise<unknown>,
): Promise<ProvisionOutcome> {
  try {
    const info = await jsm.streams.info(name);
    if (!differs(wanted, info.config as unknown as Record<string, unknown>)) return 'unchanged';
    await jsm.streams.update(name, { ...info.config, ...wanted });
    return 'updated';
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await create();
    return 'created';
  }
}

export function ensureKv(nc: NatsConnection, jsm: JetStreamManager, spec: KvSpec): Promise<ProvisionOutcome> {
  return ensureBackingStream(
    jsm,
    `KV_${spec.bucket}`,
    { max_age: nanos(spec.ttlMs), max_msgs_per_subject: spec.history, num_replicas: spec.replicas },
    () =>
      new Kvm(nc).create(spec.bucket, {
        ttl: spec.ttlMs,
        history: spec.history,
        storage: spec.storage as StorageType,
        replicas: spec.replicas,
        description: spec.description,
      }),
  );
}

export function ensureObjectStore(
  nc: NatsConnection,
  jsm: JetStreamManager,
  spec: ObjectStoreSpec,
): Promise<ProvisionOutcome> {
  return ensureBackingStream(
    jsm,
    `OBJ_${spec.bucket}`,
    { max_age: nanos(spec.ttlMs), num_replicas: spec.replicas },
    () =>
      new Objm(nc).create(spec.bucket, {
        ttl: nanos(spec.ttlMs),
        storage: spec.storage as StorageType,
        replicas: spec.replicas,
        description: spec.description,
      }),
  );
}

export interface Resources {
  streams?: readonly StreamSpec[];
  consumers?: readonly ConsumerSpec[];
  kv?: readonly KvSpec[];
  objectStores?: readonly ObjectStoreSpec[];
}

/** Creates what is missing and updates what changed; a second run reports everything unchanged. */
export async function provision(nc: NatsConnection, jsm: JetStreamManager, r: Resources): Promise<ProvisionReport> {
  const report: ProvisionReport = {};
  for (const s of r.streams ?? []) report[`stream ${s.name}`] = await ensureStream(jsm, s);
  for (const c of r.consumers ?? []) report[`consumer ${c.stream}/${c.durable}`] = await ensureConsumer(jsm, c);
  for (const k of r.kv ?? []) report[`kv ${k.bucket}`] = await ensureKv(nc, jsm, k);
  for (const o of r.objectStores ?? []) report[`object store ${o.bucket}`] = await ensureObjectStore(nc, jsm, o);
  return report;
}
