// The local backend starting and reaping real worker processes (testing/fake-worker.ts: the service
// runtime with heartbeat and idle exit) against the test run's nats-server.
import { fileURLToPath } from 'node:url';
import { Kvm, type KV } from '@nats-io/kv';
import { loadConfig } from '@ppc/lib/config';
import { createLogger } from '@ppc/lib/log';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectNats, type NatsConnection, provision } from '@ppc/lib/nats';
import { waitFor } from '@ppc/lib/testing';
import { kvBuckets, type WorkerHeartbeat } from '@ppc/proto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { autoscalerEnv, loadPools, type PoolSpec } from '../config.ts';
import { LocalBackend, type LocalWorker } from './local.ts';

const FAKE_WORKER = fileURLToPath(new URL('../testing/fake-worker.ts', import.meta.url));
const log = createLogger({ service: 'autoscaler-test', level: 'silent' });

let nc: NatsConnection;
let workers: KV;
beforeAll(async () => {
  nc = await connectNats({ servers: inject('natsUrl'), name: 'local-backend-test' });
  await provision(nc, await jetstreamManager(nc), { kv: [kvBuckets.workers] });
  workers = await new Kvm(nc).open(kvBuckets.workers.bucket);
});
afterAll(() => nc.drain());

let regions = 0;
function pool(service: 'report-worker' | 'url-checker'): PoolSpec {
  regions += 1;
  const region = `lb${process.pid}-${regions}`;
  const pools = loadPools(loadConfig(autoscalerEnv, { PPC_AUTOSCALER_REGIONS: region }));
  return pools.find((p) => p.service === service)!;
}

function backend(idleExitMs: number, exits: Array<{ w: LocalWorker; code: number | null }>, command = FAKE_WORKER) {
  return new LocalBackend({
    command: (service) => [process.execPath, command, service, '0'],
    cwd: process.cwd(),
    env: { NATS_URL: inject('natsUrl'), LOG_LEVEL: 'silent' },
    idleExitMs,
    log,
    stdio: 'ignore',
    stopGraceMs: 8000,
    onExit: (w, code) => exits.push({ w, code }),
  });
}

const heartbeatOf = async (service: string, id: string) =>
  (await workers.get(`${service}.${id}`))?.operation === 'PUT'
    ? (await workers.get(`${service}.${id}`))!.json<WorkerHeartbeat>()
    : null;

describe('LocalBackend', () => {
  it('starts workers that heartbeat into their pool, counts them as starting until then, and reaps them when they go idle', async () => {
    const exits: Array<{ w: LocalWorker; code: number | null }> = [];
    const b = backend(1500, exits);
    const p = pool('report-worker');
    const before = Date.now();
    expect(await b.start(p, 2)).toBe(2);
    const ids = b.workers.map((w) => w.instanceId);
    expect(ids).toHaveLength(2);

    const starting = await b.observe([p], new Set());
    expect(starting.get(p.name)).toEqual({ starting: 2, lastStartAt: expect.any(Number) });
    expect(starting.get(p.name)!.lastStartAt).toBeGreaterThanOrEqual(before);

    // Each worker heartbeats under the service and region of its pool, with the id it was given.
    const beats = await waitFor(
      async () => {
        const hbs = await Promise.all(ids.map((id) => heartbeatOf('report-worker', id)));
        return hbs.every((h) => h?.ready) ? hbs : null;
      },
      { what: 'both workers to heartbeat', timeoutMs: 30_000, intervalMs: 100 },
    );
    for (const hb of beats) expect(hb).toMatchObject({ service: 'report-worker', region: p.region });
    // Heartbeating workers are live, no longer starting.
    expect((await b.observe([p], new Set(ids))).get(p.name)!.starting).toBe(0);

    // Nothing to do: after the idle period they stop themselves, cleanly, and are reaped.
    await waitFor(() => b.workers.length === 0, {
      what: 'the idle workers to exit',
      timeoutMs: 30_000,
      intervalMs: 50,
    });
    expect(exits.map((e) => e.code)).toEqual([0, 0]);
    for (const e of exits) expect(Date.now() - e.w.startedAt).toBeGreaterThanOrEqual(1500);
    for (const id of ids) expect(await heartbeatOf('report-worker', id)).toBeNull();
    expect(b.details()).toEqual({ running: {}, reaped: 2 });
    // The pool's last start is remembered after its workers are gone (the cool-down runs from it).
    expect((await b.observe([p], new Set())).get(p.name)).toEqual({
      starting: 0,
      lastStartAt: starting.get(p.name)!.lastStartAt,
    });
    await b.close();
  });

  it('on close stops its workers gracefully (SIGTERM, heartbeat removed) and starts no more', async () => {
    const exits: Array<{ w: LocalWorker; code: number | null }> = [];
    const b = backend(0, exits);
    const p = pool('url-checker');
    expect(await b.start(p, 1)).toBe(1);
    const [w] = b.workers;
    await waitFor(async () => (await heartbeatOf('url-checker', w!.instanceId))?.ready, {
      what: 'the worker to heartbeat',
      timeoutMs: 30_000,
      intervalMs: 100,
    });
    await b.close();
    expect(exits).toHaveLength(1);
    expect(exits[0]!.code).toBe(0);
    expect(await heartbeatOf('url-checker', w!.instanceId)).toBeNull();
    expect(await b.start(p, 1)).toBe(0);
  });

  it('does not count a worker whose command cannot be started', async () => {
    const exits: Array<{ w: LocalWorker; code: number | null }> = [];
    const b = new LocalBackend({
      command: () => ['/nonexistent/ppc-worker'],
      cwd: process.cwd(),
      env: {},
      idleExitMs: 1000,
      log,
      stdio: 'ignore',
    });
    const p = pool('report-worker');
    expect(await b.start(p, 3)).toBe(0);
    expect((await b.observe([p], new Set())).get(p.name)).toEqual({ starting: 0, lastStartAt: null });
    expect(exits).toEqual([]);
    await b.close();
  });
});
