// Integration tests against the real nats-server started by the test harness.
import { Kvm } from '@nats-io/kv';
import { consumers, kvBuckets, streams, type WorkerHeartbeat } from '@ppc/proto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ConfigError } from '../errors/index.ts';
import { connectNats, type NatsConnection } from '../nats/connect.ts';
import { privateNatsServer, waitFor } from '../testing/index.ts';
import { attachConsumer, baseEnv, heartbeatKey, regionEnv, runService, type ServiceDefinition } from './index.ts';

const env = { ...baseEnv({ port: 0 }), ...regionEnv };
const region = `svc${process.pid}`;
const sample: ServiceDefinition<typeof env> = {
  name: 'sample',
  env,
  resources: (c) => ({ streams: [streams.reportTasks], consumers: [consumers.reportWorker(c.region)] }),
  async start(ctx) {
    const attached = await attachConsumer(ctx.jsm, consumers.reportWorker(ctx.config.region));
    ctx.http.get('/hello', async () => ({ hello: ctx.name }));
    return { details: () => ({ consumer: attached.durable }) };
  },
};

let nc: NatsConnection;
beforeAll(async () => {
  nc = await connectNats({ servers: inject('natsUrl'), name: 'service-test' });
});
afterAll(() => nc.drain());

describe('runService', () => {
  it('provisions, serves health, metrics and its own routes, and heartbeats until stopped', async () => {
    const svc = await runService(sample, {
      env: { NATS_URL: inject('natsUrl'), PORT: '0', LOG_LEVEL: 'silent', PPC_REGION: region },
      handleSignals: false,
    });
    const base = `http://127.0.0.1:${svc.port}`;
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, inFlight: 0 });
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${base}/hello`)).json()).toEqual({ hello: 'sample' });
    expect(await (await fetch(`${base}/metrics`)).text()).toMatch(/process_cpu_user_seconds_total\{service="sample"\}/);

    const workers = await new Kvm(nc).open(kvBuckets.workers.bucket);
    const key = heartbeatKey('sample', svc.ctx.instanceId);
    const hb = (await workers.get(key))!.json<WorkerHeartbeat>();
    expect(hb).toMatchObject({
      service: 'sample',
      region,
      ready: true,
      details: { consumer: `report-worker-${region}` },
    });

    await svc.stop();
    await waitFor(async () => (await workers.get(key))?.operation !== 'PUT', { what: 'heartbeat removed on stop' });
    await expect(fetch(`${base}/readyz`)).rejects.toThrow();
  });

  it('still shuts down promptly when the nats-server is gone', async () => {
    await using server = await privateNatsServer();
    const svc = await runService(sample, {
      env: { NATS_URL: server.url, PORT: '0', LOG_LEVEL: 'silent', PPC_REGION: region },
      handleSignals: false,
    });
    await server.kill();
    const started = Date.now();
    await svc.stop();
    expect(Date.now() - started).toBeLessThan(6000);
    await expect(fetch(`http://127.0.0.1:${svc.port}/readyz`)).rejects.toThrow();
  });

  it('refuses to start with a malformed variable, naming it', async () => {
    const err = await runService(sample, {
      env: { NATS_URL: inject('natsUrl'), PORT: 'http', PPC_REGION: region },
      handleSignals: false,
    }).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.message).toMatch(/^PORT="http"/);
  });

  it('names the port when it is already taken', async () => {
    const first = await runService(sample, {
      env: { NATS_URL: inject('natsUrl'), PORT: '0', LOG_LEVEL: 'silent', PPC_REGION: region },
      handleSignals: false,
    });
    const err = await runService(sample, {
      env: { NATS_URL: inject('natsUrl'), PORT: String(first.port), LOG_LEVEL: 'silent', PPC_REGION: region },
      handleSignals: false,
    }).catch((e) => e);
    await first.stop();
    expect(err.message).toBe(`port ${first.port} (PORT, sample's HTTP server) is already in use`);
  });
});
