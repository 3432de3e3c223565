// The autoscaler end to end against its own nats-server (the consumer `autoscaler` and the buckets have
// fixed names, so it must not share the run's server): clock ticks in, decisions on events.scale.<pool>
// out, and the local backend starting real worker processes (testing/fake-worker.ts) that drain the
// backlog and stop once idle.
import { fileURLToPath } from 'node:url';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connectNats, type NatsConnection, publish } from '@ppc/lib/nats';
import { type RunningService, runService } from '@ppc/lib/service';
import { privateNatsServer, waitFor } from '@ppc/lib/testing';
import {
  type ClockTick,
  ClusterTaskMsg,
  consumers,
  kvBuckets,
  ReportTaskMsg,
  type ScaleDecision,
  streams,
  type WorkerHeartbeat,
} from '@ppc/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordTaskTime } from '@ppc/lib/scaling';
import { autoscaler } from './main.ts';

const FAKE_WORKER = fileURLToPath(new URL('./testing/fake-worker.ts', import.meta.url));
const REGION = 'e2e';
const TASK_MS = 150;
const IDLE_MS = 1500;

let server: Awaited<ReturnType<typeof privateNatsServer>>;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let svc: RunningService<unknown>;
const decisions: ScaleDecision[] = [];

beforeAll(async () => {
  server = await privateNatsServer();
  svc = (await runService(autoscaler, {
    env: {
      NATS_URL: server.url,
      PORT: '0',
      LOG_LEVEL: 'silent',
      PPC_AUTOSCALER_BACKEND: 'local',
      PPC_AUTOSCALER_REGIONS: REGION,
      PPC_AUTOSCALER_POOLS: JSON.stringify({ [`report-worker-${REGION}`]: { max: 3 } }),
      PPC_AUTOSCALER_TARGET_DRAIN_MS: '1000',
      PPC_AUTOSCALER_COOLDOWN_MS: '60000',
      PPC_AUTOSCALER_WORKER_IDLE_EXIT_MS: String(IDLE_MS),
      PPC_AUTOSCALER_LOCAL_COMMAND: JSON.stringify(['node', FAKE_WORKER, '{service}', String(TASK_MS)]),
    },
    handleSignals: false,
  })) as RunningService<unknown>;
  nc = await connectNats({ servers: server.url, name: 'autoscaler-test' });
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
  nc.subscribe('events.scale.*', {
    callback: (_err, m) => {
      decisions.push(m.json<ScaleDecision>());
    },
  });
  await nc.flush();
});

afterAll(async () => {
  await svc?.stop();
  await nc?.close();
  await server?.[Symbol.asyncDispose]();
});

let fired = 0;
/** Publishes an `evaluate` tick scheduled `ageMs` ago, as the clock leader with `token` would. */
async function tick(ageMs = 0, token = 10): Promise<ClockTick> {
  fired += 1;
  const scheduledAt = new Date(Date.now() - ageMs - fired).toISOString();
  const body: ClockTick = {
    schedule: 'evaluate',
    scheduledAt,
    firedAt: new Date().toISOString(),
    fencingToken: token,
    leader: 'clock-test',
    payload: {},
  };
  await publish(js, ClusterTaskMsg, body);
  return body;
}

/** Waits until the autoscaler has acknowledged every tick it was given. */
const ticksHandled = () =>
  waitFor(
    async () => {
      const info = await jsm.consumers.info(consumers.autoscaler.stream, consumers.autoscaler.durable);
      return info.num_pending === 0 && info.num_ack_pending === 0;
    },
    { what: 'the tick to be handled', intervalMs: 20 },
  );

const metric = async (line: RegExp) => {
  const text = await (await fetch(`http://127.0.0.1:${svc.port}/metrics`)).text();
  return Number(line.exec(text)?.[1] ?? 0);
};

async function liveWorkers(): Promise<WorkerHeartbeat[]> {
  const kv = await new Kvm(nc).open(kvBuckets.workers.bucket);
  const out: WorkerHeartbeat[] = [];
  for await (const key of await kv.keys(`report-worker.>`)) {
    const e = await kv.get(key);
    if (e?.operation === 'PUT') out.push(e.json<WorkerHeartbeat>());
  }
  return out.filter((h) => h.region === REGION);
}

function reportTask(i: number) {
  return {
    runId: `run-${i}`,
    jobId: 'job-1',
    orgId: 'org-1',
    accountId: 'acc-1',
    connectionId: 'conn-1',
    platform: 'demo' as const,
    region: REGION,
    attempt: 1,
    trigger: 'schedule' as const,
    enqueuedAt: new Date().toISOString(),
    output: { kind: 'csv' as const },
    reportType: 'search-terms',
    params: {},
  };
}

describe('autoscaler service', () => {
  it('on a tick with a backlog publishes its decision and starts the difference; the workers drain it and stop once idle', async () => {
    const taskStats = await new Kvm(nc).open(kvBuckets.taskStats.bucket);
    // System has recorded that search-terms reports take about 2 s here.
    await recordTaskTime(taskStats, { pool: `report-worker-${REGION}`, taskType: 'search-terms', durationMs: 2000 });
    for (let i = 0; i < 30; i++) await publish(js, ReportTaskMsg, reportTask(i));

    await tick();
    const first = await waitFor(() => decisions.find((d) => d.pool === `report-worker-${REGION}`), {
      what: 'the report pool’s decision',
    });
    expect(first).toMatchObject({
      backlog: 30,
      live: 0,
      starting: 0,
      meanTaskMs: 2000,
      targetDrainMs: 1000,
      min: 0,
      max: 3,
      wanted: 3,
      started: 3,
      backend: 'local',
    });
    expect(first.reason).toBe(
      'backlog 30 × 2000 ms / 1 s drain needs 60, capped at max 3; has 0 (0 live, 0 starting): start 3',
    );
    // The idle URL-check pool is decided too (published once, as it is new).
    expect(decisions.find((d) => d.pool === `url-checker-${REGION}`)).toMatchObject({
      backlog: 0,
      wanted: 0,
      started: 0,
    });

    // A second tick while they come up starts nothing more: they count as starting or live.
    const before = decisions.length;
    await tick();
    const second = await waitFor(() => decisions.slice(before).find((d) => d.pool === `report-worker-${REGION}`), {
      what: 'the second decision',
    });
    expect(second.live + second.starting).toBe(3);
    expect(second.started).toBe(0);

    // Three workers heartbeat (one may finish and stop before the last is up, so they are counted as
    // seen), take the whole backlog, and stop after their idle period.
    const seen = new Set<string>();
    await waitFor(
      async () => {
        for (const h of await liveWorkers()) seen.add(h.instanceId);
        return seen.size === 3;
      },
      { what: 'three workers to heartbeat', timeoutMs: 30_000, intervalMs: 50 },
    );
    await waitFor(
      async () => {
        const info = await jsm.streams.info(streams.reportTasks.name);
        return info.state.messages === 0;
      },
      { what: 'the backlog to drain', timeoutMs: 30_000 },
    );
    await waitFor(async () => (await liveWorkers()).length === 0, {
      what: 'the idle workers to stop',
      timeoutMs: 30_000,
    });
    const metrics = await waitFor(
      async () => {
        const text = await (await fetch(`http://127.0.0.1:${svc.port}/metrics`)).text();
        return /autoscaler_workers_started_total\{pool="report-worker-e2e"[^}]*\} 3/.test(text) ? text : null;
      },
      { what: 'the started counter' },
    );
    expect(metrics).toMatch(/autoscaler_pool_wanted\{pool="report-worker-e2e"[^}]*\} 3/);
  });

  it('drops a tick older than two intervals and one from a deposed clock leader, and acts on the next fresh one', async () => {
    const scaleCount = async () =>
      (await jsm.streams.info(streams.events.name, { subjects_filter: 'events.scale.>' })).state.messages;
    const staleBefore = await metric(/autoscaler_ticks_total\{outcome="stale"[^}]*\} (\d+)/);
    const fencedBefore = await metric(/autoscaler_ticks_total\{outcome="fenced"[^}]*\} (\d+)/);
    await publish(js, ReportTaskMsg, reportTask(100));
    const published = await scaleCount();

    // Default interval 5 s: 11 s old is stale.
    await tick(11_000);
    await ticksHandled();
    await waitFor(
      async () => (await metric(/autoscaler_ticks_total\{outcome="stale"[^}]*\} (\d+)/)) === staleBefore + 1,
      {
        what: 'the stale tick to be counted',
      },
    );
    // A fresh tick from an older term (token 5 < 10 seen before).
    await tick(0, 5);
    await ticksHandled();
    await waitFor(
      async () => (await metric(/autoscaler_ticks_total\{outcome="fenced"[^}]*\} (\d+)/)) === fencedBefore + 1,
      {
        what: 'the fenced tick to be counted',
      },
    );
    expect(await scaleCount()).toBe(published);

    // A fresh tick from the current term sees the new task; the pool is still cooling down (60 s).
    const before = decisions.length;
    await tick(0, 11);
    const d = await waitFor(() => decisions.slice(before).find((x) => x.pool === `report-worker-${REGION}`), {
      what: 'a decision for the fresh tick',
    });
    // 1 task × 2 s / 1 s drain wants 2 workers.
    expect(d).toMatchObject({ backlog: 1, live: 0, starting: 0, wanted: 2, started: 0 });
    expect(d.reason).toMatch(/: 2 short, but cooling down \(last start [0-9.]+ s ago, cool-down 60 s\)$/);
    expect(await scaleCount()).toBeGreaterThan(published);
  });
});
