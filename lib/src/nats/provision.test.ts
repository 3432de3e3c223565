// Integration tests against the real nats-server (JetStream) started by the test harness.
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { uniqueName } from '../testing/index.ts';
import { connectNats, NatsUnavailableError } from './connect.ts';
import { testResources } from './fixtures/test-messages.ts';
import { provision } from './provision.ts';

let nc: NatsConnection;
let jsm: JetStreamManager;
beforeAll(async () => {
  nc = await connectNats({ servers: inject('natsUrl'), name: 'provision-test' });
  jsm = await jetstreamManager(nc);
});
afterAll(() => nc.drain());

describe('provision', () => {
  it('creates what is missing, and a second run changes nothing', async () => {
    const name = uniqueName('p');
    const r = testResources(name);
    const kv = {
      bucket: `kv_${name}`,
      ttlMs: 5000,
      history: 1,
      storage: 'memory' as const,
      replicas: 1,
      description: 't',
    };
    const obj = { bucket: `obj_${name}`, ttlMs: 60_000, storage: 'file' as const, replicas: 1, description: 't' };
    const all = { streams: [r.stream], consumers: [r.consumer], kv: [kv], objectStores: [obj] };

    const first = await provision(nc, jsm, all);
    expect(Object.values(first)).toEqual(['created', 'created', 'created', 'created']);
    const second = await provision(nc, jsm, all);
    expect(Object.values(second)).toEqual(['unchanged', 'unchanged', 'unchanged', 'unchanged']);
    const consumers = await jsm.consumers.list(r.stream.name).next();
    expect(consumers.map((c) => c.name)).toEqual([r.consumer.durable]);
  });

  it('updates a changed configuration in place instead of duplicating it', async () => {
    const r = testResources(uniqueName('p'));
    await provision(nc, jsm, { streams: [r.stream], consumers: [r.consumer] });
    const changed = await provision(nc, jsm, {
      streams: [{ ...r.stream, maxAgeMs: 3_600_000 }],
      consumers: [{ ...r.consumer, ackWaitMs: 45_000, maxDeliver: 7 }],
    });
    expect(Object.values(changed)).toEqual(['updated', 'updated']);
    const info = await jsm.consumers.info(r.stream.name, r.consumer.durable);
    expect(info.config.ack_wait).toBe(45_000 * 1e6);
    expect(info.config.max_deliver).toBe(7);
    expect((await jsm.streams.info(r.stream.name)).config.max_age).toBe(3_600_000 * 1e6);
    const names = await jsm.streams.names().next();
    expect(names.filter((n) => n === r.stream.name)).toHaveLength(1);
  });
});

describe('connectNats', () => {
  it('fails with a clear error naming the server when it is down', async () => {
    const err = await connectNats({ servers: 'nats://127.0.0.1:1', name: 'down', timeoutMs: 500 }).catch((e) => e);
    expect(err).toBeInstanceOf(NatsUnavailableError);
    expect(err.message).toMatch(/nats:\/\/127\.0\.0\.1:1/);
  });
});
