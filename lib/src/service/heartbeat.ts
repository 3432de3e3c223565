import { hostname } from 'node:os';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  HEARTBEAT_INTERVAL_MS,
  kvBuckets,
  type MessageDef,
  type WorkerHeartbeat,
  WorkerHeartbeatMsg,
} from '@ppc/proto';
import type { Logger } from 'pino';

export interface HeartbeatSource {
  service: string;
  instanceId: string;
  region: string;
  version: string;
  startedAt: string;
  inFlight(): number;
  ready(): boolean;
  details?(): Record<string, unknown>;
}

export const heartbeatKey = (service: string, instanceId: string) => `${service}.${instanceId}`;

/** Writes this instance into the `workers` bucket now and every few seconds; the bucket's TTL forgets the dead. */
export async function startHeartbeat(
  nc: NatsConnection,
  src: HeartbeatSource,
  log: Logger,
  intervalMs = HEARTBEAT_INTERVAL_MS,
): Promise<{ beat(): Promise<void>; stop(): Promise<void> }> {
  const kv: KV = await new Kvm(nc).open(kvBuckets.workers.bucket);
  const key = heartbeatKey(src.service, src.instanceId);
  const beat = async () => {
    const hb: WorkerHeartbeat = {
      service: src.service,
      instanceId: src.instanceId,
      region: src.region,
      version: src.version,
      startedAt: src.startedAt,
      at: new Date().toISOString(),
      inFlight: src.inFlight(),
      ready: src.ready(),
      pid: process.pid,
      host: hostname(),
      ...(src.details ? { details: src.details() } : {}),
    };
    const def: MessageDef = WorkerHeartbeatMsg;
    def.assert(hb);
    await kv.put(key, JSON.stringify(hb));
  };
  await beat();
  const timer = setInterval(() => {
    beat().catch((err) => log.warn({ err: (err as Error).message }, 'heartbeat failed'));
  }, intervalMs);
  return {
    beat,
    async stop() {
      clearInterval(timer);
      await kv.delete(key).catch(() => {});
    },
  };
}
