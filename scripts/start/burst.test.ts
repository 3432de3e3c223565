// Issue #9's acceptance point, end to end under `npm start`'s launcher: a burst of 2,000 report tasks makes the
// local report-worker pool grow to its max and shrink back by itself after the workers' idle period.
//
// The tasks are valid `report.task.v1` bodies for the demo platform whose runs do not exist: each one goes the
// whole worker path (the attempt check against EVENTS, `started`, a credential-broker round trip into
// PostgreSQL, which refuses RUN_NOT_FOUND, `failed`, terminate) and system's recorder takes both events. That is
// the mesh's own per-task cost without the report arithmetic, so 2,000 of them keep one worker busy for well
// over the autoscaler's tick and the workers it starts get a real share, while the whole burst still fits in
// about half a minute on two cores (2,000 real reports would take minutes there).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connectNats, publish } from '@ppc/lib/nats';
import { waitFor } from '@ppc/lib/testing';
import {
  consumers,
  kvBuckets,
  pools,
  type ReportTask,
  ReportTaskMsg,
  type ScaleDecision,
  streams,
  subjects,
  type WorkerHeartbeat,
} from '@ppc/proto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { alive, failureLog, freeOffset, MeshLaunches } from './testing.ts';

const BURST = 2000;
const MAX = 3;
const IDLE_EXIT_MS = 4000;
const POOL = pools.reportWorker('local');
// The launcher's always-on worker (PPC_IDLE_EXIT_MS=0) counts toward the pool, so the autoscaler starts MAX - 1.
const BASELINE = 1;

const dataDir = mkdtempSync(join(tmpdir(), 'ppc-burst-'));
const meshes = new MeshLaunches();
afterEach(() => meshes.stopAll());
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

const decoder = new TextDecoder();

const task = (): ReportTask => ({
  runId: crypto.randomUUID(),
  jobId: crypto.randomUUID(),
  orgId: crypto.randomUUID(),
  accountId: crypto.randomUUID(),
  connectionId: crypto.randomUUID(),
  platform: 'demo',
  region: 'local',
  attempt: 1,
  trigger: 'manual',
  enqueuedAt: new Date().toISOString(),
  output: { kind: 'csv' },
  reportType: 'account-performance',
  params: {},
});

describe('autoscaling under npm start', () => {
  it(`grows report-worker-local to its max (${MAX}) for a burst of ${BURST} report tasks and shrinks back after the idle period`, async () => {
    const offset = await freeOffset(1);
    const run = meshes.launch({
      dataDir,
      offset,
      env: {
        PPC_AUTOSCALER_MAX_WORKERS: String(MAX),
        PPC_AUTOSCALER_WORKER_IDLE_EXIT_MS: String(IDLE_EXIT_MS),
      },
    });
    let exited = false;
    void run.exit.then(() => {
      exited = true;
    });
    await waitFor(() => exited || run.out().includes('ppc-robot is up'), {
      what: 'the up line',
      timeoutMs: 90_000,
      intervalMs: 100,
    });
    if (exited) throw new Error(`the launcher exited before it was up:\n${failureLog(run.out())}`);

    const nc = await connectNats({ servers: `nats://127.0.0.1:${4222 + offset}`, name: 'burst-test' });
    try {
      const js = jetstream(nc);
      const jsm = await jetstreamManager(nc);
      let t0 = Date.now();
      const since = () => Date.now() - t0;

      // The pool as the autoscaler counts it: report-worker heartbeats of region local.
      const heartbeats = new Map<string, WorkerHeartbeat>();
      let autoscalerRunning = 0;
      const poolSize = () => [...heartbeats.values()].filter((h) => h.region === 'local').length;
      const sizes: { atMs: number; size: number }[] = [];
      /** When each worker's heartbeat was deleted (it stopped), epoch ms. */
      const goneAt = new Map<string, number>();
      const watcher = await (await new Kvm(nc).open(kvBuckets.workers.bucket)).watch({ key: '>' });
      void (async () => {
        for await (const e of watcher) {
          const [service] = e.key.split('.');
          if (service === 'autoscaler' && e.operation === 'PUT') {
            const hb = e.json<WorkerHeartbeat>();
            const running = (hb.details as { running?: Record<string, number> } | undefined)?.running;
            autoscalerRunning = running?.[POOL] ?? 0;
          }
          if (service !== 'report-worker') continue;
          if (e.operation === 'PUT') heartbeats.set(e.key, e.json<WorkerHeartbeat>());
          else {
            const hb = heartbeats.get(e.key);
            if (hb) goneAt.set(hb.instanceId, Date.now());
            heartbeats.delete(e.key);
          }
          if (sizes.at(-1)?.size !== poolSize()) sizes.push({ atMs: since(), size: poolSize() });
        }
      })();
      await waitFor(() => poolSize() === BASELINE, { what: 'the always-on worker heartbeating', timeoutMs: 15_000 });
      const baseline = new Set([...heartbeats.values()].map((h) => h.instanceId));

      const decisions: (ScaleDecision & { atMs: number })[] = [];
      nc.subscribe(subjects.scaleEvent(POOL), {
        callback: (err, msg) => {
          if (!err) decisions.push({ ...(JSON.parse(decoder.decode(msg.data)) as ScaleDecision), atMs: since() });
        },
      });

      t0 = Date.now();
      sizes.length = 0;
      const tasks = Array.from({ length: BURST }, task);
      for (let i = 0; i < tasks.length; i += 200) {
        await Promise.all(tasks.slice(i, i + 200).map((t) => publish(js, ReportTaskMsg, t)));
      }
      const publishedMs = since();

      const backlog = async () => {
        const info = await jsm.consumers.info(streams.reportTasks.name, consumers.reportWorker('local').durable);
        return info.num_pending + info.num_ack_pending;
      };
      await waitFor(() => poolSize() === MAX, { what: `the pool at its max (${MAX})`, timeoutMs: 60_000 });
      const atMaxMs = since();
      const backlogAtMax = await backlog();
      await waitFor(() => autoscalerRunning === MAX - BASELINE, {
        what: 'the local backend reporting its workers',
        timeoutMs: 15_000,
      });
      const spawned = [...heartbeats.values()].filter((h) => !baseline.has(h.instanceId));
      expect(spawned).toHaveLength(MAX - BASELINE);

      await waitFor(async () => (await backlog()) === 0, {
        what: 'the burst drained',
        timeoutMs: 120_000,
        intervalMs: 200,
      });
      const drainedMs = since();
      await waitFor(() => poolSize() === BASELINE && autoscalerRunning === 0, {
        what: 'the started workers gone after their idle period',
        timeoutMs: IDLE_EXIT_MS + 30_000,
      });
      const shrunkMs = sizes.at(-1)!.atMs;
      const lastDecision = await waitFor(
        () => decisions.find((d) => d.atMs >= shrunkMs - 1000 && d.backlog === 0 && d.live === BASELINE),
        { what: 'a decision that sees the pool back at its baseline', timeoutMs: 20_000 },
      );

      // Never above max, at max while there was backlog, and back to the baseline only after the idle period.
      expect(Math.max(...sizes.map((s) => s.size))).toBe(MAX);
      expect(backlogAtMax).toBeGreaterThan(0);
      expect(spawned.every((w) => !alive(w.pid))).toBe(true);
      // The launcher's own worker (PPC_IDLE_EXIT_MS=0) idled as long and stayed.
      expect([...heartbeats.values()].map((h) => h.instanceId)).toEqual([...baseline]);
      expect(lastDecision).toMatchObject({ starting: 0, wanted: 0, started: 0 });

      // Every decision carries its inputs; the one that scaled started exactly what the pool was short.
      const scaled = decisions.filter((d) => d.started > 0);
      expect(scaled).toHaveLength(1);
      expect(scaled[0]).toMatchObject({
        pool: POOL,
        backend: 'local',
        live: BASELINE,
        starting: 0,
        min: 0,
        max: MAX,
        wanted: MAX,
        started: MAX - BASELINE,
        targetDrainMs: 120_000,
      });
      expect(scaled[0]!.backlog).toBeGreaterThan(0);
      expect(scaled[0]!.meanTaskMs).toBeGreaterThan(0);
      expect(scaled[0]!.reason).toContain(`capped at max ${MAX}`);

      // The workers the autoscaler started took real work: every run ended through the broker's refusal, and each
      // started worker began some of them.
      const byWorker = new Map<string, number>();
      const lastStartedAt = new Map<string, number>();
      const failedCodes = new Map<string, number>();
      const events = await js.consumers.get(streams.events.name, { filter_subjects: subjects.allRunEvents });
      const runIds = new Set(tasks.map((t) => t.runId));
      let ended = 0;
      while (ended < BURST) {
        let batch = 0;
        for await (const m of await events.fetch({ max_messages: 1000, expires: 5000 })) {
          batch += 1;
          const body = m.json<{ runId: string; at?: string; worker?: string; code?: string }>();
          if (!runIds.has(body.runId)) continue;
          const kind = m.subject.split('.').pop();
          if (kind === 'started') {
            byWorker.set(body.worker!, (byWorker.get(body.worker!) ?? 0) + 1);
            lastStartedAt.set(body.worker!, Math.max(lastStartedAt.get(body.worker!) ?? 0, Date.parse(body.at!)));
          }
          if (kind === 'failed') {
            ended += 1;
            failedCodes.set(body.code!, (failedCodes.get(body.code!) ?? 0) + 1);
          }
          if (m.info.pending === 0) break;
        }
        if (batch === 0) throw new Error(`run events stopped after ${ended} of ${BURST} failed ones`);
      }
      expect(Object.fromEntries(failedCodes)).toEqual({ RUN_NOT_FOUND: BURST });
      // Each started worker stopped itself for being idle: not before its idle period had passed since the last run
      // it began, and soon after. Its idle clock samples the in-flight count (every tenth of the period), so a run
      // that begins and ends between two looks goes unseen: hence the slack below the period.
      const idleFor: number[] = [];
      for (const w of spawned) {
        expect(byWorker.get(w.instanceId) ?? 0).toBeGreaterThan(0);
        expect(run.out()).toMatch(new RegExp(`idle, stopping instance=${w.instanceId}\\b`));
        idleFor.push(goneAt.get(w.instanceId)! - lastStartedAt.get(w.instanceId)!);
      }
      expect(Math.min(...idleFor)).toBeGreaterThanOrEqual(IDLE_EXIT_MS - 1500);
      expect(Math.max(...idleFor)).toBeLessThan(IDLE_EXIT_MS + 15_000);
      expect([...byWorker.values()].reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(BURST);

      const share = [...byWorker].map(([w, n]) => `${baseline.has(w) ? 'always-on' : 'started'} ${n}`).join(', ');
      console.log(
        [
          `burst of ${BURST} published in ${(publishedMs / 1000).toFixed(1)} s`,
          `scaled at +${(scaled[0]!.atMs / 1000).toFixed(1)} s (backlog ${scaled[0]!.backlog}, started ${scaled[0]!.started})`,
          `pool at max ${MAX} at +${(atMaxMs / 1000).toFixed(1)} s (backlog ${backlogAtMax})`,
          `drained at +${(drainedMs / 1000).toFixed(1)} s`,
          `back to ${BASELINE} at +${(shrunkMs / 1000).toFixed(1)} s (idle exit ${IDLE_EXIT_MS / 1000} s; started workers stopped ${idleFor.map((ms) => (ms / 1000).toFixed(1)).join(' s, ')} s after their last run began)`,
          `pool sizes ${sizes.map((s) => `${s.size}@${(s.atMs / 1000).toFixed(1)}s`).join(' ')}`,
          `runs started per worker: ${share}`,
        ].join('; '),
      );
      watcher.stop();
    } finally {
      await nc.close();
    }

    process.kill(-run.child.pid!, 'SIGINT');
    expect(await run.exit).toBe(0);
    expect(run.out()).not.toMatch(/Unhandled|uncaught|FATAL|did not stop in time/i);
  }, 240_000);
});
