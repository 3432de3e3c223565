// `npm run bench -- system`: two real system service processes (services/system/src/main.ts) against a real
// nats-server and PostgreSQL, both in temp dirs.
//
// 1. Enqueue: 10,000 due jobs; two `enqueue-due-jobs` ticks published at once, so each replica takes one and
//    both claim batches concurrently (FOR UPDATE SKIP LOCKED). Figures: runs committed per second, and task
//    messages on REPORT_TASKS per second through the outbox relays (end to end), and duplicates.
// 2. Record: 100,000 run events (10 per run: queued, started, 7 progress, succeeded) waiting on EVENTS before
//    the two replicas start; figure: events projected per second, from the recorder consumer's first delivery
//    until it has nothing pending or unacknowledged (bounds taken from polls, the wider way round), and, from
//    process spawn, the same with start-up counted; then every run and job is checked against the state the
//    events must leave (status, times, worker, progress, the succeeded event's stream sequence, statistics).
// Baseline, in the same run: the same 100,000 events projected by calling the projection directly in this
// process, one at a time (no NATS, no concurrency): the cost of the SQL alone.
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { migrate, openDatabase } from '@ppc/lib/db';
import { connectNats, provision, publish } from '@ppc/lib/nats';
import {
  consumers,
  RunProgressMsg,
  RunQueuedMsg,
  RunStartedMsg,
  RunSucceededMsg,
  streams,
  SystemTaskMsg,
} from '@ppc/proto';
import { seedAccount } from '../../lib/src/db/fixtures/seed.ts';
import { projectRunEvent, projectRunEvents, type RunEventEntry } from '../../services/system/src/recorder.ts';
import { readdirSync, readFileSync } from 'node:fs';
import { printFigure, withNatsServer } from './harness.ts';
import { type Replica, spawnReplica, withPostgres } from './system/replicas.ts';

const JOBS = 10_000;
const EVENTS_PER_RUN = 10;
const TARGET_RUNS_PER_S = 2_000;
const TARGET_EVENTS_PER_S = 10_000;
const REGION = 'bench';

const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;
/**
 * CPU seconds (user + system) used so far by this process's descendants, by program (system replicas, postgres,
 * nats-server): what the recording costs whatever else shares the machine.
 */
function cpuOfDescendants(): Record<string, number> {
  const ticks = 100; // USER_HZ on Linux
  const procs = new Map<number, { ppid: number; comm: string; cpu: number }>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      procs.set(Number(d), { ppid: Number(f[1]), comm, cpu: (Number(f[11]) + Number(f[12])) / ticks });
    } catch {
      // exited meanwhile
    }
  }
  const out: Record<string, number> = {};
  for (const [pid, p] of procs) {
    let up = p.ppid;
    while (up > 1 && up !== process.pid) up = procs.get(up)?.ppid ?? 0;
    if (up !== process.pid) continue;
    const name = p.comm.startsWith('postgres') ? 'postgres' : p.comm.startsWith('nats') ? 'nats_server' : 'replicas';
    out[name] = (out[name] ?? 0) + p.cpu;
    void pid;
  }
  return out;
}

/** The machine's load (1, 5, 15 min): the replicas share two cores with everything else running. */
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

async function waitUntil(check: () => Promise<boolean>, what: string, timeoutMs = 300_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function run(): Promise<void> {
  await withNatsServer((nats) =>
    withPostgres(async (databaseUrl) => {
      const orm = await openDatabase(databaseUrl);
      const nc = await connectNats({ servers: nats.url, name: 'bench-system' });
      const js = jetstream(nc);
      const jsm = await jetstreamManager(nc);
      const replicas: Replica[] = [];
      try {
        await migrate(orm);
        await provision(nc, jsm, {
          streams: [streams.systemTasks, streams.events, streams.reportTasks, streams.urlCheckTasks],
          consumers: [consumers.system, consumers.systemRecorder],
        });
        const account = await seedAccount(orm);
        const due = new Date(Date.now() - 60_000);
        await orm.em.fork().execute(
          `insert into jobs (id, organization_id, account_id, name, kind, report_type, params, output, cron,
                             time_zone, enabled, next_run_at, notify, consecutive_failures, created_at, updated_at)
           select gen_random_uuid(), ?, ?, 'bench job ' || i, 'report', 'search_terms', '{}', '{"kind":"csv"}',
                  '0 * * * *', 'Europe/Prague', true, ?, '{}', 0, now(), now()
             from generate_series(1, ?) as i`,
          [account.orgId, account.accountId, due, JOBS],
        );

        // 1. Enqueue through two replicas.
        replicas.push(...(await Promise.all([1, 2].map((n) => spawnReplica(n, nats.url, databaseUrl, REGION)))));
        const countRuns = async () =>
          Number((await orm.em.fork().execute<{ n: string }[]>('select count(*) as n from runs'))[0]!.n);
        const started = performance.now();
        const now = new Date();
        await Promise.all(
          [0, 1].map((i) => {
            const at = new Date(now.getTime() + i).toISOString();
            return publish(js, SystemTaskMsg, {
              schedule: 'enqueue-due-jobs',
              scheduledAt: at,
              firedAt: at,
              fencingToken: 1,
              leader: 'bench',
              payload: {},
            });
          }),
        );
        let runsDoneAt = 0;
        await waitUntil(async () => {
          if (!runsDoneAt && (await countRuns()) >= JOBS) runsDoneAt = performance.now();
          return runsDoneAt > 0 && (await jsm.streams.info(streams.reportTasks.name)).state.messages >= JOBS;
        }, 'every run enqueued and its task published');
        const tasksDoneAt = performance.now();
        // Anything still arriving would be a duplicate: give the relays a moment to show it.
        await new Promise((r) => setTimeout(r, 1000));
        const tasks = (await jsm.streams.info(streams.reportTasks.name)).state.messages;
        const runs = await countRuns();
        const runsPerS = JOBS / ((runsDoneAt - started) / 1000);
        printFigure({
          bench: 'system',
          figure: 'enqueue_due_jobs_two_replicas',
          jobs: JOBS,
          runs,
          task_messages: tasks,
          duplicates: runs - JOBS + (tasks - JOBS),
          seconds_to_runs: round((runsDoneAt - started) / 1000),
          seconds_to_tasks: round((tasksDoneAt - started) / 1000),
          runs_enqueued_per_s: Math.round(runsPerS),
          tasks_published_per_s: Math.round(JOBS / ((tasksDoneAt - started) / 1000)),
          claimed_per_replica: replicas.map((r) => r.claimed()),
          target_runs_per_s: TARGET_RUNS_PER_S,
          meets_target: runsPerS >= TARGET_RUNS_PER_S && runs === JOBS && tasks === JOBS,
        });
        await Promise.all(replicas.splice(0).map((r) => r.stop()));

        // 2. Record: the events wait on EVENTS before the replicas start.
        const runRows = await orm.em
          .fork()
          .execute<{ id: string; organization_id: string; job_id: string }[]>(
            'select id, organization_id, job_id from runs',
          );
        const t0 = Date.parse('2026-01-01T00:00:00Z');
        const iso = (ms: number) => new Date(t0 + ms).toISOString();
        const succeededSeq = new Map<string, number>();
        const publishAll = async () => {
          const pending: Promise<unknown>[] = [];
          for (const r of runRows) {
            const base = { runId: r.id, orgId: r.organization_id, attempt: 1 };
            pending.push(
              publish(js, RunQueuedMsg, { ...base, at: iso(0), jobId: r.job_id, kind: 'report', trigger: 'schedule' }),
              publish(js, RunStartedMsg, { ...base, at: iso(1000), worker: 'bench-worker', region: REGION }),
            );
            for (let p = 1; p <= EVENTS_PER_RUN - 3; p++) {
              pending.push(
                publish(js, RunProgressMsg, {
                  ...base,
                  at: iso(1000 + p * 100),
                  phase: 'fetching',
                  percent: p * 10,
                  rows: p * 1000,
                }),
              );
            }
            pending.push(
              publish(js, RunSucceededMsg, {
                ...base,
                at: iso(5000),
                outputs: [],
                rows: { terms: 7000 },
                timings: {},
              }).then((ack) => succeededSeq.set(r.id, ack.seq)),
            );
            if (pending.length >= 2000) await Promise.all(pending.splice(0));
          }
          await Promise.all(pending);
        };
        await publishAll();
        const recorderInfo = () => jsm.consumers.info(streams.events.name, consumers.systemRecorder.durable);
        const events = (await recorderInfo()).num_pending;
        const loadBefore = loadavg();
        const spawned = performance.now();
        // Polled alongside the start-up: the last moment nothing had been delivered yet starts the clock.
        let notDeliveredAt = spawned;
        let firstDeliveryAt = 0;
        let cpuAtFirstDelivery: Record<string, number> = {};
        const watchStart = (async () => {
          while (!firstDeliveryAt) {
            const polledAt = performance.now();
            if ((await recorderInfo()).delivered.consumer_seq > 0) {
              firstDeliveryAt = performance.now();
              cpuAtFirstDelivery = cpuOfDescendants();
            } else notDeliveredAt = polledAt;
            if (!firstDeliveryAt) await new Promise((r) => setTimeout(r, 5));
          }
        })();
        replicas.push(...(await Promise.all([1, 2].map((n) => spawnReplica(n, nats.url, databaseUrl, REGION)))));
        await watchStart;
        // Consumer info is expensive on nats-server 2.9 (it recounts pending messages over every run subject,
        // ~11 ms of server time here), so it is not polled while the replicas work: the runs table tells when
        // every run has its outcome, then the consumer confirms that nothing is pending or unacknowledged.
        await waitUntil(async () => {
          const [row] = await orm.em
            .fork()
            .execute<{ n: string }[]>(`select count(*) as n from runs where status = 'succeeded'`);
          return Number(row!.n) >= runRows.length;
        }, 'every run succeeded');
        let doneAt = 0;
        await waitUntil(async () => {
          const info = await recorderInfo();
          doneAt = performance.now();
          return info.num_pending === 0 && info.num_ack_pending === 0;
        }, 'every event projected');
        const loadAfter = loadavg();
        const cpuAtEnd = cpuOfDescendants();
        const cpuSeconds = Object.fromEntries(
          Object.entries(cpuAtEnd).map(([k, v]) => [k, round(v - (cpuAtFirstDelivery[k] ?? 0))]),
        );
        const recordSeconds = (doneAt - notDeliveredAt) / 1000;
        const fromSpawnSeconds = (doneAt - spawned) / 1000;
        const redelivered = (await recorderInfo()).num_redelivered;
        const runIds = [...succeededSeq.keys()];
        const right = Number(
          (
            await orm.em.fork().execute<{ n: string }[]>(
              `select count(*) as n from runs r join unnest(?::uuid[], ?::bigint[]) as x(id, seq) on x.id = r.id
                where r.status = 'succeeded' and r.attempt = 1 and r.progress = 70 and r.phase = 'fetching'
                  and r.worker_instance = 'bench-worker' and r.started_at = ? and r.finished_at = ?
                  and r.last_event_seq = x.seq and r.error_code is null and r.row_counts = '{"terms": 7000}'`,
              [
                `{${runIds.join(',')}}`,
                `{${runIds.map((id) => succeededSeq.get(id)).join(',')}}`,
                iso(1000),
                iso(5000),
              ],
            )
          )[0]!.n,
        );
        const wrong = runRows.length - right;
        const jobsWrong = Number(
          (
            await orm.em.fork().execute<{ n: string }[]>(
              `select count(*) as n from jobs where last_success_at is distinct from ? or mean_duration_ms is distinct from 4000
                    or consecutive_failures <> 0`,
              [iso(5000)],
            )
          )[0]!.n,
        );
        await Promise.all(replicas.splice(0).map((r) => r.stop()));

        // Baseline: the projection statement alone, in-process and sequential, over a sample of runs replayed
        // from the start (reset first so each event changes the row as it did above).
        const sample = runRows.slice(0, 1000);
        await orm.em.fork().execute(
          `update runs set status = 'queued', progress = 0, phase = null, started_at = null, finished_at = null,
                    last_event_seq = 0, output_links = null, row_counts = null where id = any(?::uuid[])`,
          [`{${sample.map((r) => r.id).join(',')}}`],
        );
        let seq = 10_000_000;
        const baseStarted = performance.now();
        for (const r of sample) {
          const base = { runId: r.id, orgId: r.organization_id, attempt: 1 };
          await projectRunEvent(
            orm,
            RunQueuedMsg.type,
            { ...base, at: iso(0), jobId: r.job_id, kind: 'report', trigger: 'schedule' },
            { streamSeq: ++seq },
          );
          await projectRunEvent(
            orm,
            RunStartedMsg.type,
            { ...base, at: iso(1000), worker: 'w', region: REGION },
            { streamSeq: ++seq },
          );
          for (let p = 1; p <= EVENTS_PER_RUN - 3; p++) {
            await projectRunEvent(
              orm,
              RunProgressMsg.type,
              { ...base, at: iso(1000 + p * 100), phase: 'fetching', percent: p * 10, rows: p },
              { streamSeq: ++seq },
            );
          }
          await projectRunEvent(
            orm,
            RunSucceededMsg.type,
            { ...base, at: iso(5000), outputs: [], rows: {}, timings: {} },
            { streamSeq: ++seq },
          );
        }
        const baseSeconds = (performance.now() - baseStarted) / 1000;
        const baselinePerS = (sample.length * EVENTS_PER_RUN) / baseSeconds;

        // The same replay through the recorder's batches (200 events a transaction, one batch at a time, in this
        // process): the database's share of the recorder's cost, without NATS or the notifier.
        const batchSample = runRows.slice(1000, 3000);
        const entries: RunEventEntry[] = [];
        for (const r of batchSample) {
          const base = { runId: r.id, orgId: r.organization_id, attempt: 1 };
          entries.push({
            type: RunQueuedMsg.type,
            body: { ...base, at: iso(0), jobId: r.job_id, kind: 'report', trigger: 'schedule' },
            streamSeq: ++seq,
          });
          entries.push({
            type: RunStartedMsg.type,
            body: { ...base, at: iso(1000), worker: 'w', region: REGION },
            streamSeq: ++seq,
          });
          for (let p = 1; p <= EVENTS_PER_RUN - 3; p++) {
            entries.push({
              type: RunProgressMsg.type,
              body: { ...base, at: iso(1000 + p * 100), phase: 'fetching', percent: p * 10, rows: p },
              streamSeq: ++seq,
            });
          }
          entries.push({
            type: RunSucceededMsg.type,
            body: { ...base, at: iso(5000), outputs: [], rows: {}, timings: {} },
            streamSeq: ++seq,
          });
        }
        await orm.em.fork().execute(
          `update runs set status = 'queued', progress = 0, phase = null, started_at = null, finished_at = null,
                    last_event_seq = 0, output_links = null, row_counts = null where id = any(?::uuid[])`,
          [`{${batchSample.map((r) => r.id).join(',')}}`],
        );
        const batchStarted = performance.now();
        for (let i = 0; i < entries.length; i += 200) await projectRunEvents(orm, entries.slice(i, i + 200));
        const batchSeconds = (performance.now() - batchStarted) / 1000;
        printFigure({
          bench: 'system',
          figure: 'batched_projection_in_process',
          events: entries.length,
          batch: 200,
          seconds: round(batchSeconds),
          events_per_s: Math.round(entries.length / batchSeconds),
        });
        const eventsPerS = events / recordSeconds;
        printFigure({
          bench: 'system',
          figure: 'baseline_sequential_projection_in_process',
          events: sample.length * EVENTS_PER_RUN,
          seconds: round(baseSeconds),
          events_per_s: Math.round(baselinePerS),
        });
        printFigure({
          bench: 'system',
          figure: 'record_run_events_two_replicas',
          events,
          runs: runRows.length,
          seconds_first_delivery_to_last_ack: round(recordSeconds),
          events_projected_per_s: Math.round(eventsPerS),
          seconds_from_spawn: round(fromSpawnSeconds),
          events_per_s_from_spawn: Math.round(events / fromSpawnSeconds),
          ratio_vs_sequential_baseline: round(eventsPerS / baselinePerS),
          redelivered,
          // From the first delivery on (start-up left out): what the recording cost in CPU, per program.
          cpu_seconds: cpuSeconds,
          cpu_us_per_event: Math.round((Object.values(cpuSeconds).reduce((a, b) => a + b, 0) * 1e6) / events),
          runs_in_wrong_state: wrong,
          jobs_with_wrong_statistics: jobsWrong,
          loadavg_before: loadBefore,
          loadavg_after: loadAfter,
          target_events_per_s: TARGET_EVENTS_PER_S,
          meets_target: eventsPerS >= TARGET_EVENTS_PER_S && wrong === 0 && jobsWrong === 0,
        });
      } finally {
        await Promise.all(replicas.map((r) => r.stop().catch(() => {})));
        await nc.drain().catch(() => {});
        await orm.close(true);
      }
    }),
  );
}
