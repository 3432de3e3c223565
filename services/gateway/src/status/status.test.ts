import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { publish } from '@ppc/lib/nats';
import { waitFor } from '@ppc/lib/testing';
import { consumers, ScaleDecisionMsg, streams, subjects } from '@ppc/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureConsumer, ensureStream } from '../../../../lib/src/nats/provision.ts';
import { type GatewayHarness, startGatewayHarness, type Tenant } from '../testing/harness.ts';

const STATUS = `{ status {
  at
  instances { service instanceId region version startedAt lastHeartbeatAt inFlight ready }
  services { service instances inFlight regions }
  clock { leader since renewedAt fencingToken }
  queues { pool stream pending ackPending backlog }
  scaleDecisions { pool at backlog wanted started reason }
  deadLetters
  unavailable
} }`;

interface Status {
  at: string;
  instances: { service: string; instanceId: string; region: string; inFlight: number; ready: boolean }[];
  services: { service: string; instances: number }[];
  clock: { leader: string | null };
  queues: { pool: string; pending: number; ackPending: number; backlog: number }[];
  scaleDecisions: { pool: string; wanted: number; reason: string }[];
  deadLetters: number;
  unavailable: string[];
}

describe('status', () => {
  let h: GatewayHarness;
  let owner: Tenant;
  const region = `gw-status-${process.pid}`;
  const pool = consumers.reportWorker(region).durable;

  beforeAll(async () => {
    h = await startGatewayHarness({ PPC_REGION: region });
    owner = await h.seedTenant();
  }, 60_000);
  afterAll(async () => {
    const jsm = await jetstreamManager(h.nc);
    await jsm.consumers.delete(streams.reportTasks.name, pool).catch(() => {});
    await jsm.streams.purge(streams.reportTasks.name, { filter: subjects.reportTasksOfRegion(region) }).catch(() => {});
    await h?.close();
  });

  const status = async (as: Tenant | null = owner) => {
    const res = await h.gql<{ status: Status }>(STATUS, {}, as);
    return res;
  };

  it('lists the running instances from their heartbeats, the gateway itself among them', async () => {
    const res = await status();
    expect(res.body.errors).toBeUndefined();
    const s = res.body.data!.status;
    expect(s.instances).toContainEqual(
      expect.objectContaining({ service: 'gateway', instanceId: h.svc.ctx.instanceId, region, inFlight: 0 }),
    );
    expect(s.services).toContainEqual(expect.objectContaining({ service: 'gateway' }));
    expect(s.unavailable).toEqual([]);
    expect(s.clock).toHaveProperty('leader');
  });

  it('shows each worker pool’s queue depth and the autoscaler’s latest decision for it', async () => {
    const jsm = await jetstreamManager(h.nc);
    const js = jetstream(h.nc);
    await ensureConsumer(jsm, consumers.reportWorker(region));
    for (let i = 0; i < 3; i++) await js.publish(subjects.reportTask(region, 'search-terms'), '{}');
    const decision = (wanted: number, reason: string) =>
      publish(js, ScaleDecisionMsg, {
        pool,
        at: new Date().toISOString(),
        backlog: 3,
        live: 0,
        starting: 0,
        meanTaskMs: 1000,
        targetDrainMs: 60_000,
        min: 0,
        max: 10,
        wanted,
        started: wanted,
        backend: 'local',
        reason,
      });
    await decision(1, 'first');
    await decision(2, 'latest');
    const s = await waitFor(
      async () => {
        const r = (await status()).body.data?.status;
        return r?.queues.some((q) => q.pool === pool && q.pending === 3) &&
          r.scaleDecisions.some((d) => d.pool === pool)
          ? r
          : null;
      },
      { what: 'the pool in the status' },
    );
    expect(s.queues.find((q) => q.pool === pool)).toEqual({
      pool,
      stream: streams.reportTasks.name,
      pending: 3,
      ackPending: 0,
      backlog: 3,
    });
    expect(s.scaleDecisions.filter((d) => d.pool === pool)).toEqual([
      expect.objectContaining({ pool, wanted: 2, reason: 'latest' }),
    ]);
  });

  it('counts the dead letters', async () => {
    const jsm = await jetstreamManager(h.nc);
    await ensureStream(jsm, streams.deadLetters);
    const ack = await jetstream(h.nc).publish(`dlq.tasks.system.status-test-${process.pid}`, '{}');
    try {
      await waitFor(
        async () =>
          (await status()).body.data?.status.deadLetters ===
          (await jsm.streams.info(streams.deadLetters.name)).state.messages,
        { what: 'the dead-letter count' },
      );
    } finally {
      await jsm.streams.deleteMessage(streams.deadLetters.name, ack.seq);
    }
  });

  it('is readable with the read scope only (a viewer), and not at all without signing in', async () => {
    const viewer = await h.addMember(owner, 'viewer');
    expect((await status(viewer)).body.data?.status.instances.length).toBeGreaterThan(0);
    expect((await status(null)).body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });
});
