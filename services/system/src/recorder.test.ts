// The run recorder against the real PostgreSQL (and, end to end, a private nats-server).
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { type Database, Job, migrate, openDatabase, Run } from '@ppc/lib/db';
import { seedAccount } from '../../../lib/src/db/fixtures/seed.ts';
import { freshDatabaseUrl } from '../../../lib/src/db/fixtures/test-database.ts';
import { createLogger } from '@ppc/lib/log';
import { connectNats, ensureConsumer, ensureStream, publish } from '@ppc/lib/nats';
import { privateNatsServer, waitFor } from '@ppc/lib/testing';
import {
  consumers,
  RunCancelledMsg,
  RunFailedMsg,
  RunProgressMsg,
  RunQueuedMsg,
  RunStartedMsg,
  RunSucceededMsg,
  runEventMessages,
  streams,
} from '@ppc/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  atMicros,
  projectRunEvent,
  projectRunEvents,
  RECENT_SUCCESSES,
  RunEventBatcher,
  type RunEventBody,
  startRecorder,
} from './recorder.ts';

let orm: Database;
let orgId: string;
let accountId: string;

beforeAll(async () => {
  orm = await openDatabase(await freshDatabaseUrl('recorder'), { poolMax: 20 });
  await migrate(orm);
  ({ orgId, accountId } = await seedAccount(orm, { orgName: 'Recorder Inc', timeZone: 'UTC' }));
});
afterAll(() => orm?.close(true));

async function createJob(): Promise<string> {
  const em = orm.em.fork();
  const job = em.create(Job, {
    organization: orgId,
    account: accountId,
    name: 'job',
    reportType: 'campaigns',
    params: {},
    output: { kind: 'csv' },
    notify: {},
  });
  await em.flush();
  return job.id;
}

async function createRuns(jobId: string, n: number): Promise<string[]> {
  const em = orm.em.fork();
  const runs = Array.from({ length: n }, () => em.create(Run, { organization: orgId, job: jobId, trigger: 'manual' }));
  await em.flush();
  return runs.map((r) => r.id);
}

interface RunRow {
  id: string;
  job_id: string;
  status: string;
  attempt: number;
  progress: number;
  phase: string | null;
  timings: unknown;
  worker_instance: string | null;
  output_links: unknown;
  row_counts: unknown;
  error_code: string | null;
  error_message: string | null;
  last_event_seq: string;
  started_at: string | null;
  finished_at: string | null;
  queued_at: unknown;
}
interface JobRow {
  last_success_at: string | null;
  mean_duration_ms: number | null;
  consecutive_failures: number;
}

/** Raw rows carry timestamps as strings; as ISO strings they compare exactly. */
const isoOrNull = (v: unknown): string | null => (v == null ? null : new Date(v as string).toISOString());

const runRow = async (id: string): Promise<RunRow> => {
  const rows = await orm.em.fork().execute<RunRow[]>('select * from runs where id = ?', [id]);
  const r = rows[0]!;
  return { ...r, started_at: isoOrNull(r.started_at), finished_at: isoOrNull(r.finished_at) };
};
const jobRow = async (id: string): Promise<JobRow> => {
  const rows = await orm.em
    .fork()
    .execute<JobRow[]>('select last_success_at, mean_duration_ms, consecutive_failures from jobs where id = ?', [id]);
  const j = rows[0]!;
  return { ...j, last_success_at: isoOrNull(j.last_success_at) };
};
/** A run's state without its identity, for comparing two runs that saw the same events. */
const stateOf = async (id: string) => {
  const { id: _id, job_id: _job, queued_at: _queued, ...rest } = await runRow(id);
  return rest;
};

// ---- event builders --------------------------------------------------------------------------

interface Ev {
  type: string;
  body: RunEventBody;
  seq: number;
}

const T0 = Date.parse('2026-01-01T00:00:00Z');
const iso = (ms: number) => new Date(T0 + ms).toISOString();

const ev = {
  queued: (runId: string, attempt: number, atMs: number): Omit<Ev, 'seq'> => ({
    type: RunQueuedMsg.type,
    body: { runId, orgId, attempt, at: iso(atMs), jobId: 'job', kind: 'report', trigger: 'manual' },
  }),
  started: (runId: string, attempt: number, atMs: number, worker = 'w1'): Omit<Ev, 'seq'> => ({
    type: RunStartedMsg.type,
    body: { runId, orgId, attempt, at: iso(atMs), worker, region: 'local' },
  }),
  progress: (
    runId: string,
    attempt: number,
    atMs: number,
    percent: number,
    phase: 'fetching' | 'processing' | 'writing' = 'fetching',
  ): Omit<Ev, 'seq'> => ({
    type: RunProgressMsg.type,
    body: { runId, orgId, attempt, at: iso(atMs), phase, percent, rows: Math.round(percent * 10) },
  }),
  succeeded: (runId: string, attempt: number, atMs: number): Omit<Ev, 'seq'> => ({
    type: RunSucceededMsg.type,
    body: {
      runId,
      orgId,
      attempt,
      at: iso(atMs),
      outputs: [{ kind: 'csv', name: 'report.csv', url: `https://files.example/${runId}` }],
      rows: { campaigns: 42 },
      timings: { total: atMs },
    },
  }),
  failed: (runId: string, attempt: number, atMs: number, message = 'quota exceeded'): Omit<Ev, 'seq'> => ({
    type: RunFailedMsg.type,
    body: { runId, orgId, attempt, at: iso(atMs), code: 'RATE_LIMITED', message, retryable: true },
  }),
  cancelled: (runId: string, attempt: number, atMs: number): Omit<Ev, 'seq'> => ({
    type: RunCancelledMsg.type,
    body: { runId, orgId, attempt, at: iso(atMs), reason: 'user cancelled' },
  }),
};

let nextSeq = 1;
/** Gives events stream sequence numbers in the order they were "published". */
const sequence = (events: Omit<Ev, 'seq'>[]): Ev[] => events.map((e) => ({ ...e, seq: nextSeq++ }));
const project = (e: Ev) => projectRunEvent(orm, e.type, e.body, { streamSeq: e.seq });

/** Seeded PRNG (mulberry32), so a failing shuffle can be reproduced. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function shuffle<T>(items: T[], random: () => number): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

const SCENARIOS = ['success', 'failure', 'cancel', 'retry', 'redelivered', 'double-terminal', 'in-flight'] as const;
type Scenario = (typeof SCENARIOS)[number];

/** One run's events in publish order (timestamps in ms after T0, increasing). */
function scenarioEvents(s: Scenario, runId: string, random: () => number): Omit<Ev, 'seq'>[] {
  let t = Math.floor(random() * 1000);
  const tick = () => (t += 100 + Math.floor(random() * 900));
  const progressRun = (attempt: number) => {
    const out: Omit<Ev, 'seq'>[] = [];
    const phases = ['fetching', 'processing', 'writing'] as const;
    let pct = 0;
    for (let i = 0; i < 2 + Math.floor(random() * 5); i++) {
      pct = Math.min(100, pct + 1 + Math.floor(random() * 25));
      out.push(ev.progress(runId, attempt, tick(), pct, phases[Math.min(2, Math.floor(pct / 34))]!));
    }
    return out;
  };
  const attempt1 = [ev.queued(runId, 1, tick()), ev.started(runId, 1, tick()), ...progressRun(1)];
  switch (s) {
    case 'success':
      return [...attempt1, ev.succeeded(runId, 1, tick())];
    case 'failure':
      return [...attempt1, ev.failed(runId, 1, tick())];
    case 'cancel':
      return [...attempt1, ev.cancelled(runId, 1, tick())];
    case 'retry':
      return [
        ...attempt1,
        ev.failed(runId, 1, tick()),
        ev.queued(runId, 2, tick()),
        ev.started(runId, 2, tick(), 'w2'),
        ...progressRun(2),
        ev.succeeded(runId, 2, tick()),
      ];
    case 'redelivered':
      return [...attempt1, ev.started(runId, 1, tick(), 'w2'), ...progressRun(1), ev.succeeded(runId, 1, tick())];
    case 'double-terminal':
      return [...attempt1, ev.failed(runId, 1, tick()), ev.succeeded(runId, 1, tick())];
    case 'in-flight':
      return attempt1;
  }
}

/**
 * The same 50 runs of event histories three times over (three sets of jobs and runs), interleaved by
 * run as a stream would hold them. Set `i`'s events carry the same sequence numbers as set 0's.
 */
async function buildHistories(seed: number, sets: number) {
  const random = rng(seed);
  const runsPerJob = 10;
  const scenarios = Array.from({ length: 50 }, (_, i) => SCENARIOS[i % SCENARIOS.length]!);
  const jobs: string[][] = [];
  const runs: string[][] = [];
  for (let s = 0; s < sets; s++) {
    const setJobs: string[] = [];
    const setRuns: string[] = [];
    for (let j = 0; j < scenarios.length / runsPerJob; j++) {
      const job = await createJob();
      setJobs.push(job);
      setRuns.push(...(await createRuns(job, runsPerJob)));
    }
    jobs.push(setJobs);
    runs.push(setRuns);
  }
  // Per run, its events in order; then interleave runs randomly while keeping each run's order.
  const perRun = scenarios.map((sc, i) => scenarioEvents(sc, `RUN${i}`, random));
  const order: number[] = shuffle(
    perRun.flatMap((events, i) => events.map(() => i)),
    random,
  );
  const cursor = perRun.map(() => 0);
  const template = sequence(order.map((i) => perRun[i]![cursor[i]!++]!));
  const forSet = (s: number): Ev[] =>
    template.map((e) => {
      const index = Number(e.body.runId.slice(3));
      return { ...e, body: { ...e.body, runId: runs[s]![index]! } };
    });
  return { scenarios, jobs, runs, forSet, random };
}

// ---- tests -----------------------------------------------------------------------------------

describe('projectRunEvent', () => {
  it('projects a run through its lifecycle and records its outcome', async () => {
    const job = await createJob();
    const [run] = await createRuns(job, 1);
    const events = sequence([
      ev.queued(run!, 1, 0),
      ev.started(run!, 1, 1000, 'worker-a'),
      ev.progress(run!, 1, 2000, 40, 'processing'),
      ev.succeeded(run!, 1, 5000),
    ]);
    const outcomes = [];
    for (const e of events) outcomes.push((await project(e)).outcome);
    // The queued event changes nothing but the sequence it has seen.
    expect(outcomes).toEqual(['applied', 'applied', 'applied', 'applied']);
    const r = await runRow(run!);
    expect(r).toMatchObject({
      status: 'succeeded',
      attempt: 1,
      progress: 40,
      phase: 'processing',
      worker_instance: 'worker-a',
      output_links: [{ kind: 'csv', name: 'report.csv', url: `https://files.example/${run}` }],
      row_counts: { campaigns: 42 },
      timings: { total: 5000 },
      error_code: null,
      last_event_seq: String(events[3]!.seq),
    });
    expect(r.started_at).toBe(iso(1000));
    expect(r.finished_at).toBe(iso(5000));
    const j = await jobRow(job);
    expect(j.last_success_at).toBe(iso(5000));
    expect(j.mean_duration_ms).toBe(4000);
    expect(j.consecutive_failures).toBe(0);
  });

  it('ignores duplicates and stale events: a run never moves backwards', async () => {
    const job = await createJob();
    const [run] = await createRuns(job, 1);
    const [queued, started, p30, p60, succeeded] = sequence([
      ev.queued(run!, 1, 0),
      ev.started(run!, 1, 1000),
      ev.progress(run!, 1, 1500, 30, 'processing'),
      ev.progress(run!, 1, 2000, 60, 'writing'),
      ev.succeeded(run!, 1, 3000),
    ]);
    expect((await project(started!)).outcome).toBe('applied');
    expect((await project(p60!)).outcome).toBe('applied');
    // Earlier progress, an earlier status, and a redelivery change nothing.
    expect(await project(p30!)).toMatchObject({ outcome: 'ignored', status: 'running' });
    expect((await project(queued!)).outcome).toBe('ignored');
    expect((await project(p60!)).outcome).toBe('ignored');
    let r = await runRow(run!);
    expect(r).toMatchObject({ status: 'running', progress: 60, phase: 'writing' });
    expect(r.last_event_seq).toBe(String(p60!.seq));

    expect(await project(succeeded!)).toMatchObject({ outcome: 'applied', status: 'succeeded', statsUpdated: true });
    // The terminal state is final: a redelivered terminal event recomputes nothing, later events change nothing.
    expect(await project(succeeded!)).toMatchObject({ outcome: 'ignored', statsUpdated: false });
    expect(await project(started!)).toMatchObject({ outcome: 'ignored', status: 'succeeded' });
    const [late] = sequence([ev.progress(run!, 1, 1800, 10, 'fetching')]);
    expect((await project(late!)).outcome).toBe('ignored');
    r = await runRow(run!);
    expect(r).toMatchObject({ status: 'succeeded', progress: 60, last_event_seq: String(succeeded!.seq) });
  });

  it('orders progress by percent, then phase, whichever arrives first', async () => {
    const job = await createJob();
    const [a, b] = await createRuns(job, 2);
    const events = (run: string) =>
      sequence([ev.progress(run, 1, 1000, 50, 'processing'), ev.progress(run, 1, 1100, 50, 'writing')]);
    for (const e of events(a!)) await project(e);
    for (const e of events(b!).reverse()) await project(e);
    for (const run of [a!, b!]) expect(await runRow(run)).toMatchObject({ progress: 50, phase: 'writing' });
  });

  it('keeps the first terminal event of an attempt, whichever arrives first', async () => {
    const job = await createJob();
    const [a, b] = await createRuns(job, 2);
    const events = (run: string) => sequence([ev.failed(run, 1, 1000, 'boom'), ev.succeeded(run, 1, 2000)]);
    const [failA, okA] = events(a!);
    await project(failA!);
    expect((await project(okA!)).outcome).toBe('ignored');
    const [failB, okB] = events(b!);
    await project(okB!);
    expect((await runRow(b!)).status).toBe('succeeded');
    // The failure came first in the stream: it replaces the success that happened to be projected first.
    expect(await project(failB!)).toMatchObject({ outcome: 'applied', status: 'failed', statsUpdated: true });
    for (const run of [a!, b!]) {
      expect(await runRow(run)).toMatchObject({ status: 'failed', error_code: 'RATE_LIMITED', error_message: 'boom' });
    }
    expect((await runRow(b!)).output_links).toBeNull();
    // Both failed: the statistics were recomputed after the replacement, not left at "succeeded".
    expect(await jobRow(job)).toMatchObject({ last_success_at: null, consecutive_failures: 2 });
  });

  it('lets a newer attempt supersede an older one, and ignores the older attempt afterwards', async () => {
    const job = await createJob();
    const [run] = await createRuns(job, 1);
    await project(sequence([ev.started(run!, 1, 0)])[0]!);
    await project(sequence([ev.progress(run!, 1, 500, 80, 'writing')])[0]!);
    await project(sequence([ev.failed(run!, 1, 1000, "it's a \\ back?slash ? 'quote'")])[0]!);
    expect(await runRow(run!)).toMatchObject({
      status: 'failed',
      error_message: "it's a \\ back?slash ? 'quote'",
    });
    expect((await jobRow(job)).consecutive_failures).toBe(1);

    // Attempt 2 is queued: everything attempt 1 left is reset, and the job no longer counts a failure.
    expect(await project(sequence([ev.queued(run!, 2, 2000)])[0]!)).toMatchObject({
      outcome: 'applied',
      status: 'queued',
      attempt: 2,
      statsUpdated: true,
    });
    expect(await runRow(run!)).toMatchObject({
      status: 'queued',
      attempt: 2,
      progress: 0,
      phase: null,
      worker_instance: null,
      error_code: null,
      error_message: null,
      finished_at: null,
      started_at: null,
    });
    expect((await jobRow(job)).consecutive_failures).toBe(0);

    // Attempt 1's late events (a redelivered progress, even a success) are stale now.
    expect((await project(sequence([ev.progress(run!, 1, 900, 95, 'writing')])[0]!)).outcome).toBe('ignored');
    expect((await project(sequence([ev.succeeded(run!, 1, 3000)])[0]!)).outcome).toBe('ignored');
    expect((await runRow(run!)).status).toBe('queued');

    // A newer attempt's first event may be its terminal one (the queued and started events came later).
    expect((await project(sequence([ev.succeeded(run!, 3, 6000)])[0]!)).outcome).toBe('applied');
    expect((await project(sequence([ev.started(run!, 3, 4000, 'w3')])[0]!)).outcome).toBe('applied');
    expect((await project(sequence([ev.queued(run!, 2, 2500)])[0]!)).outcome).toBe('ignored');
    expect(await runRow(run!)).toMatchObject({ status: 'succeeded', attempt: 3, worker_instance: 'w3' });
    expect(await jobRow(job)).toMatchObject({ mean_duration_ms: 2000, consecutive_failures: 0 });
  });

  it('computes job statistics: last success, mean of recent successes, failures since the last success', async () => {
    const job = await createJob();
    const successes = RECENT_SUCCESSES + 2;
    const runs = await createRuns(job, successes + 4);
    // Success i starts at i*10 s and takes (i+1) seconds.
    for (let i = 0; i < successes; i++) {
      const start = i * 10_000;
      for (const e of sequence([ev.started(runs[i]!, 1, start), ev.succeeded(runs[i]!, 1, start + (i + 1) * 1000)])) {
        await project(e);
      }
    }
    const lastSuccess = (successes - 1) * 10_000 + successes * 1000;
    // The mean covers only the most recent RECENT_SUCCESSES: durations 3..12 s here.
    const recent = Array.from({ length: RECENT_SUCCESSES }, (_, k) => (successes - k) * 1000);
    const mean = Math.round(recent.reduce((a, b) => a + b, 0) / recent.length);
    let j = await jobRow(job);
    expect(j.last_success_at).toBe(iso(lastSuccess));
    expect(j.mean_duration_ms).toBe(mean);
    expect(j.consecutive_failures).toBe(0);

    // Two failures and a cancellation after the last success: two consecutive failures.
    const after = lastSuccess + 1000;
    await project(sequence([ev.failed(runs[successes]!, 1, after)])[0]!);
    await project(sequence([ev.cancelled(runs[successes + 1]!, 1, after + 1000)])[0]!);
    await project(sequence([ev.failed(runs[successes + 2]!, 1, after + 2000)])[0]!);
    j = await jobRow(job);
    expect(j.consecutive_failures).toBe(2);
    expect(j.last_success_at).toBe(iso(lastSuccess));

    // A success resets the count; it took 500 ms and enters the mean, pushing out the oldest (3 s).
    await project(sequence([ev.started(runs[successes + 3]!, 1, after + 3000)])[0]!);
    await project(sequence([ev.succeeded(runs[successes + 3]!, 1, after + 3500)])[0]!);
    j = await jobRow(job);
    expect(j.consecutive_failures).toBe(0);
    expect(j.last_success_at).toBe(iso(after + 3500));
    const newRecent = [500, ...recent.slice(0, RECENT_SUCCESSES - 1)];
    expect(j.mean_duration_ms).toBe(Math.round(newRecent.reduce((a, b) => a + b, 0) / newRecent.length));
  });

  it('reports events of unknown runs without failing', async () => {
    const missing = '00000000-0000-4000-8000-000000000000';
    expect(await project(sequence([ev.started(missing, 1, 0)])[0]!)).toEqual({
      outcome: 'unknown-run',
      statsUpdated: false,
    });
    expect((await project(sequence([ev.started('not-a-uuid', 1, 0)])[0]!)).outcome).toBe('unknown-run');
  });

  it('reaches the in-order state from shuffled, duplicated events (50 runs), alone, with two concurrent projectors and in concurrent batches', async () => {
    const h = await buildHistories(20261123, 4);
    const inOrder = h.forSet(0);
    for (const e of inOrder) await project(e);

    // The in-order projection itself is right, scenario by scenario.
    const expected: Record<Scenario, { status: string; attempt: number; worker?: string }> = {
      success: { status: 'succeeded', attempt: 1, worker: 'w1' },
      failure: { status: 'failed', attempt: 1, worker: 'w1' },
      cancel: { status: 'cancelled', attempt: 1, worker: 'w1' },
      retry: { status: 'succeeded', attempt: 2, worker: 'w2' },
      redelivered: { status: 'succeeded', attempt: 1, worker: 'w2' },
      'double-terminal': { status: 'failed', attempt: 1, worker: 'w1' },
      'in-flight': { status: 'running', attempt: 1, worker: 'w1' },
    };
    for (const [i, sc] of h.scenarios.entries()) {
      const r = await runRow(h.runs[0]![i]!);
      const want = expected[sc];
      expect({ sc, status: r.status, attempt: r.attempt, worker: r.worker_instance }).toEqual({
        sc,
        status: want.status,
        attempt: want.attempt,
        worker: want.worker,
      });
      expect(r.progress).toBeGreaterThan(0);
    }

    // Set 1: every event twice, in a random order, one projector.
    const shuffled = shuffle([...h.forSet(1), ...h.forSet(1)], h.random);
    let applied = 0;
    for (const e of shuffled) if ((await project(e)).outcome === 'applied') applied += 1;
    expect(applied).toBeLessThan(shuffled.length); // duplicates and dominated events were ignored

    // Set 2: two projectors, each with 8 concurrent workers, race through their own shuffles of the same events.
    const projector = async (events: Ev[]) => {
      const queue = [...events];
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          for (let e = queue.shift(); e; e = queue.shift()) await project(e);
        }),
      );
    };
    const set2 = [...h.forSet(2), ...h.forSet(2)];
    await Promise.all([projector(shuffle(set2, h.random)), projector(shuffle(set2, h.random))]);

    // Set 3: the recorder's way, group commit: two batchers (two replicas), small batches, two transactions
    // in flight each, all events handed in at once in two different shuffles.
    // One takes batches of 7, the other everything in one batch, where redundant events are left out.
    const batched = async (events: Ev[], maxBatch: number) => {
      const batcher = new RunEventBatcher(orm, { maxBatch, parallel: 2 });
      await Promise.all(events.map((e) => batcher.project({ type: e.type, body: e.body, streamSeq: e.seq })));
    };
    const set3 = [...h.forSet(3), ...h.forSet(3)];
    await Promise.all([batched(shuffle(set3, h.random), 7), batched(shuffle(set3, h.random), 10_000)]);

    for (let i = 0; i < h.scenarios.length; i++) {
      const want = await stateOf(h.runs[0]![i]!);
      for (const set of [1, 2, 3]) {
        expect({ set, run: i, ...(await stateOf(h.runs[set]![i]!)) }).toEqual({ set, run: i, ...want });
      }
    }
    for (let j = 0; j < h.jobs[0]!.length; j++) {
      const want = await jobRow(h.jobs[0]![j]!);
      expect(want.last_success_at).not.toBeNull();
      for (const set of [1, 2, 3]) expect({ set, ...(await jobRow(h.jobs[set]![j]!)) }).toEqual({ set, ...want });
    }
  });
});

describe('projectRunEvents (one statement per batch, events folded per run)', () => {
  it('leaves a run as projecting its events one by one would, and says which events changed it', async () => {
    const job = await createJob();
    const [one, batched] = await createRuns(job, 2);
    const template = (run: string) =>
      sequence([
        ev.queued(run, 1, 0),
        ev.started(run, 1, 1000, 'w1'),
        ev.progress(run, 1, 1500, 30, 'processing'),
        ev.failed(run, 1, 2000), // attempt 1 failed, attempt 2 replaces it
        ev.queued(run, 2, 3000),
        ev.started(run, 2, 4000, 'w2'),
        ev.progress(run, 2, 4500, 50, 'writing'),
        ev.progress(run, 2, 4600, 50, 'processing'),
        ev.succeeded(run, 2, 6000),
        ev.failed(run, 2, 7000), // a second outcome of attempt 2, later in the stream: ignored
      ]);
    // The same events (same stream sequences) for both runs.
    const base = template('RUN');
    const events = (run: string): Ev[] =>
      base.map((e) => ({
        ...e,
        body: { ...e.body, runId: run, ...('outputs' in e.body ? { outputs: [] } : {}) } as RunEventBody,
      }));
    for (const e of events(one!)) await project(e);
    const list = events(batched!);
    // Shuffled, with duplicates, in one batch.
    const entries = shuffle([...list, list[5]!, list[8]!], rng(7)).map((e) => ({
      type: e.type,
      body: e.body,
      streamSeq: e.seq,
    }));
    const results = await projectRunEvents(orm, entries);
    expect(await stateOf(batched!)).toEqual(await stateOf(one!));
    expect(await runRow(batched!)).toMatchObject({ status: 'succeeded', attempt: 2, worker_instance: 'w2' });
    // Applied: the latest started, the highest progress and the first outcome of attempt 2; the rest changed
    // nothing the others did not (one of two copies of an event is applied at most).
    const applied = entries.filter((_, i) => results[i]!.outcome === 'applied').map((e) => e.streamSeq);
    expect(applied.sort((a, b) => a - b)).toEqual([list[5]!.seq, list[6]!.seq, list[8]!.seq]);
    for (const r of results) expect(r).toMatchObject({ status: 'succeeded', attempt: 2 });
    // The outcome's wall time is reported once, with the terminal event that won.
    const finished = results.filter((r) => r.finished);
    expect(finished).toHaveLength(1);
    expect(finished[0]!.finished).toMatchObject({ runId: batched, kind: 'report', durationMs: 2000 });
    expect(finished[0]!.statsUpdated).toBe(true);
    expect(await jobRow(job)).toMatchObject({ mean_duration_ms: 2000, consecutive_failures: 0 });

    // The same batch again: nothing changes, nothing is recomputed.
    const again = await projectRunEvents(orm, entries);
    expect(again.map((r) => r.outcome)).toEqual(entries.map(() => 'ignored'));
    expect(again.some((r) => r.statsUpdated || r.finished)).toBe(false);
  });

  it('recomputes job statistics only when what they read changed', async () => {
    const job = await createJob();
    const [run] = await createRuns(job, 1);
    const [started, succeeded, lateProgress] = sequence([
      ev.started(run!, 1, 1000),
      ev.succeeded(run!, 1, 4000),
      ev.progress(run!, 1, 3000, 90, 'writing'),
    ]);
    expect((await project(started!)).statsUpdated).toBe(false); // running: not in the statistics
    expect((await project(succeeded!)).statsUpdated).toBe(true);
    // A late progress event still raises the progress of the finished run, but no statistic reads it.
    expect(await project(lateProgress!)).toMatchObject({ outcome: 'applied', statsUpdated: false });
    expect(await runRow(run!)).toMatchObject({ status: 'succeeded', progress: 90 });
    expect(await jobRow(job)).toMatchObject({ mean_duration_ms: 3000 });
  });

  it('orders started events by time to the microsecond, as PostgreSQL stores it, in a batch or one by one', async () => {
    expect(atMicros('2026-01-01T00:00:00.000001Z') - atMicros('2026-01-01T00:00:00Z')).toBe(1);
    expect(atMicros('2026-01-01T01:00:00.5+01:00')).toBe(atMicros('2026-01-01T00:00:00.500000Z'));
    expect(atMicros('2026-01-01T00:00:00.0000015Z')).toBe(atMicros('2026-01-01T00:00:00.000002Z'));
    const job = await createJob();
    const [a, b] = await createRuns(job, 2);
    const started = (run: string, at: string, worker: string) => ({
      type: RunStartedMsg.type,
      body: { runId: run, orgId, attempt: 1, at, worker, region: 'local' },
    });
    // Same millisecond, the later microsecond wins; on the same instant, the greater worker name (bytes) wins.
    const list = (run: string) =>
      sequence([
        started(run, '2026-01-01T00:00:01.123456Z', 'late'),
        started(run, '2026-01-01T00:00:01.123400Z', 'early'),
        started(run, '2026-01-01T00:00:02+00:00', 'Zed'),
        started(run, '2026-01-01T01:00:02+01:00', 'alpha'),
      ]);
    for (const e of list(a!)) await project(e);
    await projectRunEvents(
      orm,
      list(b!).map((e) => ({ type: e.type, body: e.body, streamSeq: e.seq })),
    );
    for (const run of [a!, b!]) {
      expect(await runRow(run)).toMatchObject({ worker_instance: 'alpha', started_at: '2026-01-01T00:00:02.000Z' });
    }
  });
});

describe('RunEventBatcher', () => {
  it('projects the rest of a batch when one event has data PostgreSQL rejects, and fails only that one', async () => {
    const job = await createJob();
    const [good, bad] = await createRuns(job, 2);
    const [started, progress] = sequence([ev.started(good!, 1, 1000, 'w-good'), ev.progress(good!, 1, 2000, 40)]);
    // Passes the schema's pattern, but there is no 30 February.
    const [impossible] = sequence([
      { type: RunFailedMsg.type, body: { ...ev.failed(bad!, 1, 0).body, at: '2026-02-30T00:00:00Z' } },
    ]);
    const batcher = new RunEventBatcher(orm, { maxBatch: 10, parallel: 1 });
    const outcomes = await Promise.allSettled(
      [started!, impossible!, progress!].map((e) => batcher.project({ type: e.type, body: e.body, streamSeq: e.seq })),
    );
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((outcomes[1] as PromiseRejectedResult).reason).toMatchObject({ code: '22008' });
    expect(await runRow(good!)).toMatchObject({ status: 'running', worker_instance: 'w-good', progress: 40 });
    expect(await runRow(bad!)).toMatchObject({ status: 'queued', last_event_seq: '0' });
  });
});

describe('startRecorder', () => {
  it('consumes run events from EVENTS and projects them, ignoring the redelivered ones', async () => {
    await using server = await privateNatsServer();
    const nc = await connectNats({ servers: server.url, name: 'recorder-test' });
    try {
      const jsm = await jetstreamManager(nc);
      await ensureStream(jsm, streams.events);
      await ensureStream(jsm, streams.deadLetters);
      await ensureConsumer(jsm, consumers.systemRecorder);
      const js = jetstream(nc);
      const log = createLogger({ service: 'recorder-test', level: 'silent' });
      const job = await createJob();
      const [run, other] = await createRuns(job, 2);
      const pub = (e: Omit<Ev, 'seq'>) => publish(js, runEventMessages.find((d) => d.type === e.type)!, e.body);
      const recorder = await startRecorder({ js, log }, orm, { concurrency: 16 });
      try {
        await pub(ev.queued(run!, 1, 0));
        await pub(ev.started(run!, 1, 1000, 'worker-e2e'));
        for (const pct of [10, 50, 90]) {
          await pub(ev.progress(run!, 1, 1000 + pct, pct, 'processing'));
        }
        await pub(ev.succeeded(run!, 1, 3000));
        await pub(ev.failed(other!, 1, 2500));
        const done = await waitFor(
          async () => {
            const r = await runRow(run!);
            // Batches commit in parallel, so the last progress event may land after the terminal one.
            const settled = r.status === 'succeeded' && r.progress === 90;
            return settled && (await runRow(other!)).status === 'failed' ? r : null;
          },
          { what: 'both runs finished in the database, with their last progress' },
        );
        expect(done).toMatchObject({ progress: 90, worker_instance: 'worker-e2e', row_counts: { campaigns: 42 } });
        // The projected sequence is the terminal event's stream sequence.
        const last = await jsm.streams.getMessage(streams.events.name, {
          last_by_subj: `events.run.${run}.succeeded`,
        });
        expect(done.last_event_seq).toBe(String(last?.seq));
        await waitFor(
          async () =>
            (await jsm.consumers.info(streams.events.name, consumers.systemRecorder.durable)).num_ack_pending === 0,
          {
            what: 'all events acknowledged',
          },
        );
        expect(await jobRow(job)).toMatchObject({ consecutive_failures: 0, mean_duration_ms: 2000 });
      } finally {
        await recorder.stop(2000);
      }
    } finally {
      await nc.drain();
    }
  });
});
