// Idle exit: the watcher alone, then through the real service runtime against the test nats-server.
import { Kvm } from '@nats-io/kv';
import { kvBuckets } from '@ppc/proto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ConfigError } from '../errors/index.ts';
import { connectNats, type NatsConnection } from '../nats/connect.ts';
import { waitFor } from '../testing/index.ts';
import { baseEnv, heartbeatKey, idleEnv, runService, type ServiceDefinition, watchIdle } from './index.ts';

describe('watchIdle', () => {
  it('fires once, only after the in-flight count has stayed 0 for the whole period', async () => {
    let busy = 1;
    const fired: number[] = [];
    const started = performance.now();
    let lastBusyAt = started;
    const w = watchIdle({
      idleExitMs: 150,
      checkEveryMs: 10,
      inFlight: () => busy,
      onIdle: () => fired.push(performance.now()),
    });
    // Busy for a while: nothing fires however long it lasts.
    await waitFor(() => performance.now() - started > 300, { intervalMs: 10 });
    expect(fired).toEqual([]);
    busy = 0;
    lastBusyAt = performance.now();
    await waitFor(() => fired.length === 1, { what: 'the idle callback' });
    expect(fired[0]! - lastBusyAt).toBeGreaterThanOrEqual(150 - 15);
    // It does not fire again.
    const firedAt = fired[0]!;
    await waitFor(() => performance.now() - firedAt > 100, { intervalMs: 10 });
    expect(fired).toHaveLength(1);
    w.stop();
  });

  it('restarts the period on touch() and never fires with a period of 0', async () => {
    const fired: string[] = [];
    const never = watchIdle({ idleExitMs: 0, inFlight: () => 0, onIdle: () => fired.push('never') });
    const touched = watchIdle({
      idleExitMs: 120,
      checkEveryMs: 10,
      inFlight: () => 0,
      onIdle: () => fired.push('touched'),
    });
    const started = performance.now();
    let lastTouch = started;
    const toucher = setInterval(() => {
      if (performance.now() - started < 300) {
        touched.touch();
        lastTouch = performance.now();
      }
    }, 20);
    await waitFor(() => fired.includes('touched'), { what: 'the touched watcher to fire' });
    clearInterval(toucher);
    expect(performance.now() - lastTouch).toBeGreaterThanOrEqual(120 - 15);
    expect(performance.now() - started).toBeGreaterThanOrEqual(300);
    expect(fired).toEqual(['touched']);
    never.stop();
    touched.stop();
  });
});

const env = { ...baseEnv({ port: 0 }), ...idleEnv };
let nc: NatsConnection;
beforeAll(async () => {
  nc = await connectNats({ servers: inject('natsUrl'), name: 'idle-test' });
});
afterAll(() => nc.drain());

/** A service whose one "consumer" is busy while `work.busy` is set. */
function busyService(work: { busy: boolean }): ServiceDefinition<typeof env> {
  return {
    name: 'idler',
    env,
    async start(ctx) {
      ctx.track({ inFlight: () => (work.busy ? 1 : 0), stop: async () => {} });
      return undefined;
    },
  };
}

describe('idle exit in the service runtime', () => {
  it('keeps a busy worker running and stops it gracefully once it has been idle for PPC_IDLE_EXIT_MS', async () => {
    const work = { busy: true };
    const svc = await runService(busyService(work), {
      env: { NATS_URL: inject('natsUrl'), PORT: '0', LOG_LEVEL: 'silent', PPC_IDLE_EXIT_MS: '400' },
      handleSignals: false,
    });
    const base = `http://127.0.0.1:${svc.port}`;
    const workers = await new Kvm(nc).open(kvBuckets.workers.bucket);
    const key = heartbeatKey('idler', svc.ctx.instanceId);
    const started = performance.now();
    await waitFor(() => performance.now() - started > 800, { intervalMs: 50 });
    // Busy for twice the idle period: still serving and heartbeating.
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await workers.get(key))?.operation).toBe('PUT');

    work.busy = false;
    const idleSince = performance.now();
    await waitFor(async () => (await workers.get(key))?.operation !== 'PUT', { what: 'the heartbeat to be removed' });
    expect(performance.now() - idleSince).toBeGreaterThanOrEqual(400 - 50);
    // The heartbeat goes first; readiness is refused while it stops, then the server closes.
    await waitFor(
      () =>
        fetch(`${base}/readyz`).then(
          (r) => r.status === 503 && 'stopping',
          () => 'closed',
        ),
      { what: 'readiness refused' },
    );
    await waitFor(
      () =>
        fetch(`${base}/readyz`).then(
          () => false,
          () => true,
        ),
      { what: 'the HTTP server closed' },
    );
    await svc.stop();
  });

  it('never stops a worker configured with PPC_IDLE_EXIT_MS=0, and rejects a negative period by name', async () => {
    const svc = await runService(busyService({ busy: false }), {
      env: { NATS_URL: inject('natsUrl'), PORT: '0', LOG_LEVEL: 'silent', PPC_IDLE_EXIT_MS: '0' },
      handleSignals: false,
    });
    const started = performance.now();
    await waitFor(() => performance.now() - started > 1500, { intervalMs: 50, timeoutMs: 5000 });
    expect((await fetch(`http://127.0.0.1:${svc.port}/readyz`)).status).toBe(200);
    await svc.stop();

    const err = await runService(busyService({ busy: false }), {
      env: { NATS_URL: inject('natsUrl'), PORT: '0', PPC_IDLE_EXIT_MS: '-5' },
      handleSignals: false,
    }).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(/^PPC_IDLE_EXIT_MS="-5": expected milliseconds without in-flight work/);
  });
});
