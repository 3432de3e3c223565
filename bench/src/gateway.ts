// `npm run bench -- gateway [--rate 500] [--seconds 20] [--subscribers 1000] [--events 100]`
// The gateway runs as its own process against a real nats-server and PostgreSQL (10,000 seeded runs).
// - runs_query: the `runs` query (first page of 20) sent open-loop at a steady rate for the given seconds over
//   keep-alive connections; latency from send to full response. Target p99 ≤ 20 ms. Baseline in the same run:
//   the gateway's `/healthz` at the same rate (fastify, no GraphQL, no database), and the ratio.
// - run_updated: `subscribers` graphql-ws clients subscribed to `runUpdated` of one run, then a burst of `events`
//   progress events published to EVENTS at once from a worker thread (gateway/burst-publisher.ts); delivery latency
//   from each event's publish to each client's receipt of the message carrying it (one clock across threads).
//   Target p99 ≤ 100 ms. Baseline in the same run: one ordered JetStream consumer in this process on the same
//   subject (what NATS alone costs), and the ratio.
import { loadavg } from 'node:os';
import { Worker } from 'node:worker_threads';
import { jetstream } from '@nats-io/jetstream';
import { type ConsumerMessages, jetstreamManager } from '@nats-io/jetstream';
import { migrate, openDatabase } from '@ppc/lib/db';
import { connectNats, publish } from '@ppc/lib/nats';
import { RunQueuedMsg, streams } from '@ppc/proto';
import { createClient } from 'graphql-ws';
import { Agent, request } from 'undici';
import WebSocket from 'ws';
import type { BurstOrder } from './gateway/burst-publisher.ts';
import { seed, spawnGateway } from './gateway/fixtures.ts';
import { printFigure, withNatsServer } from './harness.ts';
import { withPostgres } from './system/replicas.ts';

function arg(args: string[], name: string, fallback: number): number {
  const i = args.indexOf(name);
  const v = i >= 0 ? Number(args[i + 1]) : fallback;
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} expects a positive integer`);
  return v;
}

const round2 = (x: number) => Math.round(x * 100) / 100;
function percentiles(ms: number[]) {
  const s = [...ms].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0;
  return { p50_ms: round2(at(0.5)), p99_ms: round2(at(0.99)), max_ms: round2(s[s.length - 1] ?? 0) };
}

const RUNS_QUERY = `query Runs($first: Int) { runs(first: $first) { items { id status phase progress queuedAt finishedAt job { id name } } nextCursor } }`;

/** `app;dur=2.35` → 2.35 (the gateway's Server-Timing header). */
function serverTiming(header: string | string[] | undefined): number | undefined {
  const m = /app;dur=([\d.]+)/.exec(String(header ?? ''));
  return m ? Number(m[1]) : undefined;
}

/** Sends `send()` every 1000/rate ms for `seconds` (open loop: a slow answer does not delay the next request). */
async function steady(
  rate: number,
  seconds: number,
  send: () => Promise<number | undefined>,
): Promise<{ latencies: number[]; server: number[]; errors: number }> {
  const latencies: number[] = [];
  const server: number[] = [];
  let errors = 0;
  const total = rate * seconds;
  const start = performance.now();
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    const t = performance.now();
    inFlight.push(
      send().then(
        (serverMs) => {
          latencies.push(performance.now() - t);
          if (serverMs !== undefined) server.push(serverMs);
        },
        () => {
          errors += 1;
        },
      ),
    );
  }
  await Promise.all(inFlight);
  return { latencies, server, errors };
}

async function queryPhase(url: string, token: string, rate: number, seconds: number) {
  const dispatcher = new Agent({ connections: 64, pipelining: 1, keepAliveTimeout: 30_000 });
  const body = JSON.stringify({ query: RUNS_QUERY, variables: { first: 20 } });
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
  const runsQuery = async () => {
    const res = await request(`${url}/graphql`, { method: 'POST', headers, body, dispatcher });
    const json = (await res.body.json()) as { data?: { runs?: { items: unknown[] } }; errors?: unknown[] };
    if (res.statusCode !== 200 || json.errors || json.data?.runs?.items.length !== 20) {
      throw new Error(`runs query failed: ${res.statusCode} ${JSON.stringify(json).slice(0, 300)}`);
    }
    return serverTiming(res.headers['server-timing']);
  };
  const health = async () => {
    const res = await request(`${url}/healthz`, { dispatcher });
    await res.body.dump();
    if (res.statusCode !== 200) throw new Error(`healthz ${res.statusCode}`);
    return serverTiming(res.headers['server-timing']);
  };
  await runsQuery(); // surfaces a broken query before the clock starts
  await steady(rate, 2, runsQuery); // warm-up: JIT, connection pool, database plans
  const baseline = await steady(rate, seconds, health);
  const load = loadavg()[0];
  const measured = await steady(rate, seconds, runsQuery);
  await dispatcher.close();
  const base = percentiles(baseline.latencies);
  const q = percentiles(measured.latencies);
  const qServer = percentiles(measured.server);
  printFigure({
    bench: 'gateway',
    figure: 'baseline_healthz',
    rate_per_s: rate,
    seconds,
    requests: baseline.latencies.length,
    errors: baseline.errors,
    ...base,
  });
  printFigure({
    bench: 'gateway',
    figure: 'runs_query',
    rate_per_s: rate,
    seconds,
    requests: measured.latencies.length,
    errors: measured.errors,
    ...q,
    p99_ratio_vs_healthz: round2(q.p99_ms / Math.max(base.p99_ms, 0.01)),
    // The gateway's own time per response (its Server-Timing header): what the load generator's share of the same
    // two cores adds is the difference.
    server_p50_ms: qServer.p50_ms,
    server_p99_ms: qServer.p99_ms,
    target_p99_ms: 20,
    meets_target: q.p99_ms <= 20 && measured.errors === 0,
    load_average_1m: round2(load ?? 0),
  });
}

async function subscriptionPhase(
  natsUrl: string,
  url: string,
  token: string,
  orgId: string,
  jobId: string,
  runId: string,
  subscribers: number,
  events: number,
) {
  const nc = await connectNats({ servers: natsUrl, name: 'bench-gateway' });
  const js = jetstream(nc);
  const at = () => new Date().toISOString();
  // One event before anyone subscribes: each client's first message proves its replay works and that it is live.
  await publish(js, RunQueuedMsg, { runId, orgId, attempt: 1, at: at(), jobId, kind: 'report', trigger: 'manual' });

  const received: number[][] = [];
  // The clock the publisher thread stamps with.
  const now = () => performance.timeOrigin + performance.now();
  let ready = 0;
  let failed = 0;
  let liveMessages = 0;
  const clients: ReturnType<typeof createClient>[] = [];
  const done: Promise<void>[] = [];
  const wsUrl = `${url.replace(/^http/, 'ws')}/graphql`;
  const SUB = `subscription Run($id: ID!) { runUpdated(runId: $id) { events { kind percent } } }`;
  const readyAll = new Promise<void>((resolveAll) => {
    for (let c = 0; c < subscribers; c++) {
      const times: number[] = new Array(events).fill(Number.NaN);
      received.push(times);
      const client = createClient({
        url: wsUrl,
        // The ws package (what the gateway serves with): 1,000 clients share this process, so their cost matters.
        webSocketImpl: WebSocket,
        retryAttempts: 0,
        connectionParams: { authorization: `Bearer ${token}` },
      });
      clients.push(client);
      let count = 0;
      let first = true;
      done.push(
        new Promise<void>((resolve) => {
          client.subscribe<{ runUpdated: { events: { kind: string; percent: number | null }[] } }>(
            { query: SUB, variables: { id: runId } },
            {
              next(msg) {
                const at = now();
                const update = msg.data?.runUpdated;
                if (!update) return;
                if (first) {
                  first = false;
                  ready += 1;
                  if (ready === subscribers) resolveAll();
                } else liveMessages += 1;
                for (const ev of update.events) {
                  if (ev.kind !== 'progress' || ev.percent === null) continue;
                  const i = Math.round(ev.percent) - 1;
                  if (i >= 0 && i < events && Number.isNaN(times[i]!)) {
                    times[i] = at;
                    count += 1;
                    if (count === events) resolve();
                  }
                }
              },
              error() {
                failed += 1;
                resolve();
              },
              complete: () => resolve(),
            },
          );
        }),
      );
    }
  });
  const subscribeStart = performance.now();
  await Promise.race([
    readyAll,
    new Promise((_, reject) =>
      setTimeout(
        () => reject(new Error(`only ${ready}/${subscribers} subscribers ready after 120 s (${failed} failed)`)),
        120_000,
      ),
    ),
  ]);
  const subscribeMs = performance.now() - subscribeStart;

  // Baseline: one ordered consumer in this process, on the same subject, started now (live only).
  const jsm = await jetstreamManager(nc);
  const info = await jsm.streams.info(streams.events.name);
  const ordered = await js.consumers.get(streams.events.name, {
    filter_subjects: `events.run.${runId}.progress`,
    opt_start_seq: info.state.last_seq + 1,
  } as never);
  const baselineTimes: number[] = new Array(events).fill(Number.NaN);
  const iter: ConsumerMessages = await ordered.consume();
  const baselineDone = (async () => {
    let n = 0;
    for await (const m of iter) {
      const i = Math.round(m.json<{ percent: number }>().percent) - 1;
      baselineTimes[i] = now();
      if (++n === events) break;
    }
  })();

  const order: BurstOrder = { natsUrl, runId, orgId, events };
  const publisher = new Worker(new URL('./gateway/burst-publisher.ts', import.meta.url), { workerData: order });
  const publisherMessage = <T>() =>
    new Promise<T>((resolve, reject) => {
      publisher.once('message', resolve);
      publisher.once('error', reject);
    });
  await publisherMessage<{ ready: true }>();
  const load = loadavg()[0];
  const burstDone = publisherMessage<{ publishedAt: number[]; ackedAt: number }>();
  publisher.postMessage('go');
  const { publishedAt, ackedAt } = await burstDone;
  await publisher.terminate();
  await Promise.race([Promise.all(done), new Promise((r) => setTimeout(r, 60_000))]);
  await Promise.race([baselineDone, new Promise((r) => setTimeout(r, 10_000))]);
  const latencies: number[] = [];
  let missing = 0;
  for (const times of received) {
    times.forEach((t, i) => {
      if (Number.isNaN(t)) missing += 1;
      else latencies.push(t - publishedAt[i]!);
    });
  }
  const baseLat = baselineTimes.map((t, i) => t - publishedAt[i]!).filter((ms) => !Number.isNaN(ms));
  const sub = percentiles(latencies);
  const base = percentiles(baseLat);
  printFigure({ bench: 'gateway', figure: 'baseline_ordered_consumer', events, delivered: baseLat.length, ...base });
  printFigure({
    bench: 'gateway',
    figure: 'run_updated',
    subscribers,
    events,
    delivered: latencies.length,
    missing,
    failed_subscriptions: failed,
    // Events that arrive together reach a subscriber in one message.
    messages: liveMessages,
    events_per_message: round2(latencies.length / Math.max(liveMessages, 1)),
    subscribe_all_ms: Math.round(subscribeMs),
    // From the first publish to the last ack.
    burst_ms: round2(ackedAt - publishedAt[0]!),
    ...sub,
    p99_ratio_vs_ordered_consumer: round2(sub.p99_ms / Math.max(base.p99_ms, 0.01)),
    target_p99_ms: 100,
    meets_target: sub.p99_ms <= 100 && missing === 0 && failed === 0,
    load_average_1m: round2(load ?? 0),
  });
  for (const c of clients) void c.dispose();
  iter.stop();
  await nc.close();
}

export async function run(args: string[]): Promise<void> {
  const rate = arg(args, '--rate', 500);
  const seconds = arg(args, '--seconds', 20);
  const subscribers = arg(args, '--subscribers', 1000);
  const events = arg(args, '--events', 100);
  await withNatsServer((nats) =>
    withPostgres(async (databaseUrl) => {
      const orm = await openDatabase(databaseUrl, { poolMax: 2 });
      await migrate(orm);
      const seeded = await seed(orm, 10_000);
      await orm.close(true);
      const gw = await spawnGateway(nats.url, databaseUrl);
      try {
        await queryPhase(gw.url, seeded.token, rate, seconds);
        await subscriptionPhase(
          nats.url,
          gw.url,
          seeded.token,
          seeded.orgId,
          seeded.jobId,
          seeded.runIds[0]!,
          subscribers,
          events,
        );
      } finally {
        await gw.stop();
      }
    }),
  );
}
