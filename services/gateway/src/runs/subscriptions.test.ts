import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { publish } from '@ppc/lib/nats';
import { waitFor } from '@ppc/lib/testing';
import { RunProgressMsg, RunQueuedMsg, RunStartedMsg, RunSucceededMsg, streams, subjects } from '@ppc/proto';
import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GatewayHarness, startGatewayHarness, type Tenant } from '../testing/harness.ts';
import { seedJob, seedRun } from './testing.ts';

interface RunEvent {
  runId: string;
  seq: number;
  kind: string;
  status: string;
  attempt: number;
  phase: string | null;
  percent: number | null;
  rows: number | null;
  worker: string | null;
  outputs: { kind: string; name: string; url: string }[] | null;
  rowCounts: Record<string, number> | null;
}

const EVENT_FIELDS = 'runId seq kind status attempt phase percent rows worker outputs { kind name url } rowCounts';

/** A subscription's results as they arrive. */
function collect<T>(client: Client, query: string, variables: Record<string, unknown> = {}) {
  const state = { items: [] as T[], errors: null as unknown, completed: false };
  const dispose = client.subscribe<Record<string, T>>(
    { query, variables },
    {
      next: (v) => {
        if (v.errors) state.errors = v.errors;
        else if (v.data) state.items.push(Object.values(v.data)[0]!);
      },
      error: (e) => {
        state.errors = e;
      },
      complete: () => {
        state.completed = true;
      },
    },
  );
  return { state, dispose };
}

/** `runUpdated`'s events as they arrive (flattened), and the messages that carried them. */
function collectRun<T>(client: Client, runId: string, fields: string) {
  const query = `subscription($id: ID!) { runUpdated(runId: $id) { runId events { ${fields} } } }`;
  const messages = collect<{ runId: string; events: T[] }>(client, query, { id: runId });
  const state = {
    get items() {
      return messages.state.items.flatMap((m) => m.events);
    },
    get messages() {
      return messages.state.items;
    },
    get errors() {
      return messages.state.errors;
    },
  };
  return { state, dispose: messages.dispose };
}

/** Codes of a subscription's errors, whatever form graphql-ws delivered them in. */
const codesOf = (errors: unknown) =>
  (Array.isArray(errors) ? errors : [errors]).map((e) => (e as { extensions?: { code?: string } }).extensions?.code);

describe('run subscriptions over graphql-ws', () => {
  let h: GatewayHarness;
  let js: JetStreamClient;
  let jsm: JetStreamManager;
  let a: Tenant;
  let b: Tenant;
  const clients: Client[] = [];

  beforeAll(async () => {
    h = await startGatewayHarness();
    js = jetstream(h.nc);
    jsm = await jetstreamManager(h.nc);
    a = await h.seedTenant({ name: 'Acme' });
    b = await h.seedTenant({ name: 'Globex' });
  }, 60_000);
  afterAll(async () => {
    for (const c of clients) await c.dispose();
    await h?.close();
  });

  const client = (as: Tenant) => {
    const c = h.ws(as);
    clients.push(c);
    return c;
  };

  const at = () => new Date().toISOString();
  const progress = (runId: string, orgId: string, percent: number, rows: number) =>
    publish(js, RunProgressMsg, { runId, orgId, attempt: 1, at: at(), phase: 'fetching', percent, rows });

  /** Consumers on EVENTS reading exactly this run's events. */
  async function consumersOf(runId: string): Promise<number> {
    let n = 0;
    for await (const ci of jsm.consumers.list(streams.events.name)) {
      if (ci.config.filter_subject === subjects.runEvents(runId)) n += 1;
    }
    return n;
  }

  it('runUpdated replays a run’s past events from the start in order, then delivers live ones in order', async () => {
    const jobId = await seedJob(h, a);
    const runId = await seedRun(h, a, jobId);
    await publish(js, RunQueuedMsg, {
      runId,
      orgId: a.orgId,
      attempt: 1,
      at: at(),
      jobId,
      kind: 'report',
      trigger: 'manual',
    });
    await publish(js, RunStartedMsg, { runId, orgId: a.orgId, attempt: 1, at: at(), worker: 'w-1', region: 'local' });
    for (let i = 1; i <= 100; i++) await progress(runId, a.orgId, i * 0.5, i * 10);

    // Subscribed after all of that was published.
    const sub = collectRun<RunEvent>(client(a), runId, EVENT_FIELDS);
    await waitFor(() => sub.state.items.length >= 102 || sub.state.errors, { what: '102 replayed events' });
    expect(sub.state.errors).toBeNull();
    expect(sub.state.messages[0]).toMatchObject({ runId });
    // Once the replica holds the history, a newcomer gets all of it in its first message.
    const late = collectRun<RunEvent>(client(a), runId, 'seq');
    await waitFor(() => late.state.messages.length > 0 || late.state.errors, { what: 'the newcomer’s first message' });
    expect(late.state.messages[0]!.events).toHaveLength(102);
    late.dispose();
    expect(sub.state.items.slice(0, 2).map((e) => [e.kind, e.status])).toEqual([
      ['queued', 'queued'],
      ['started', 'running'],
    ]);
    expect(sub.state.items[1]!.worker).toBe('w-1');
    expect(sub.state.items.slice(2).map((e) => e.percent)).toEqual(
      Array.from({ length: 100 }, (_, i) => (i + 1) * 0.5),
    );

    // A burst of 100 more, live, then the outcome.
    for (let i = 1; i <= 100; i++) await progress(runId, a.orgId, 50 + i * 0.5, 1000 + i);
    await publish(js, RunSucceededMsg, {
      runId,
      orgId: a.orgId,
      attempt: 1,
      at: at(),
      outputs: [{ kind: 'xlsx', name: 'Terms.xlsx', url: `/artifacts/${runId}/Terms.xlsx` }],
      rows: { Terms: 1100 },
      timings: { total: 1234 },
    });
    await waitFor(() => sub.state.items.length >= 203, { what: 'the live events' });
    const items = sub.state.items;
    expect(items).toHaveLength(203);
    expect(items.slice(102, 202).map((e) => e.rows)).toEqual(Array.from({ length: 100 }, (_, i) => 1001 + i));
    expect(items.every((e) => e.runId === runId && e.attempt === 1)).toBe(true);
    // Publish order is stream order: strictly increasing sequences, nothing twice, nothing missing.
    for (let i = 1; i < items.length; i++) expect(items[i]!.seq).toBeGreaterThan(items[i - 1]!.seq);
    expect(items.at(-1)).toMatchObject({
      kind: 'succeeded',
      status: 'succeeded',
      outputs: [{ kind: 'xlsx', name: 'Terms.xlsx', url: `/artifacts/${runId}/Terms.xlsx` }],
      rowCounts: { Terms: 1100 },
    });

    // Unsubscribing stops and removes the consumer at once.
    expect(await consumersOf(runId)).toBe(1);
    sub.dispose();
    await waitFor(async () => (await consumersOf(runId)) === 0, { what: 'the consumer to be removed' });
  });

  it('runUpdated watchers of one run share one consumer, each gets every event in order, joining late or early', async () => {
    const jobId = await seedJob(h, a);
    const runId = await seedRun(h, a, jobId);
    for (let i = 1; i <= 10; i++) await progress(runId, a.orgId, i, i);
    const watch = () => collectRun<{ percent: number; seq: number }>(client(a), runId, 'percent seq');
    const early = [1, 2, 3].map(watch);
    await waitFor(() => early.every((s) => s.state.items.length >= 10), { what: 'the early watchers’ history' });
    expect(await consumersOf(runId)).toBe(1);
    for (let i = 11; i <= 20; i++) await progress(runId, a.orgId, i, i);
    const late = watch();
    await waitFor(() => [...early, late].every((s) => s.state.items.length >= 20), { what: 'every event everywhere' });
    for (const s of [...early, late]) {
      expect(s.state.errors).toBeNull();
      expect(s.state.items.map((e) => e.percent)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    }
    expect(await consumersOf(runId)).toBe(1);
    for (const s of [...early, late]) s.dispose();
    await waitFor(async () => (await consumersOf(runId)) === 0, { what: 'the shared consumer to be removed' });
  });

  it('runUpdated of a quiet run ends its consumer on unsubscribe too (no event needed to notice)', async () => {
    const runId = await seedRun(h, a, await seedJob(h, a));
    const sub = collectRun<RunEvent>(client(a), runId, 'kind');
    await waitFor(async () => (await consumersOf(runId)) === 1, { what: 'the subscription’s consumer' });
    sub.dispose();
    await waitFor(async () => (await consumersOf(runId)) === 0, { what: 'the consumer to be removed' });
    expect(sub.state.items).toEqual([]);
  });

  it('removes a subscription’s consumer when the client’s connection closes without unsubscribing', async () => {
    const runId = await seedRun(h, a, await seedJob(h, a));
    const c = h.ws(a);
    collectRun<RunEvent>(c, runId, 'kind');
    await waitFor(async () => (await consumersOf(runId)) === 1, { what: 'the subscription’s consumer' });
    await c.dispose();
    await waitFor(async () => (await consumersOf(runId)) === 0, { what: 'the consumer to be removed' });
  });

  it('answers queries and mutations over the WebSocket with BAD_REQUEST (they go to POST /graphql)', async () => {
    const sub = collect(client(a), '{ me { id } }');
    await waitFor(() => sub.state.errors, { what: 'the query to be refused' });
    expect(codesOf(sub.state.errors)).toEqual(['BAD_REQUEST']);
    expect(sub.state.items).toEqual([]);
  });

  it('allows 100 operations on one connection and refuses the next with RATE_LIMITED', async () => {
    const runId = await seedRun(h, a, await seedJob(h, a));
    const c = client(a);
    const open = Array.from({ length: 100 }, () => collectRun<RunEvent>(c, runId, 'kind'));
    await waitFor(async () => (await consumersOf(runId)) === 1, { what: 'the run’s consumer' });
    const extra = collectRun<RunEvent>(c, runId, 'kind');
    await waitFor(() => extra.state.errors, { what: 'the 101st operation to be refused' });
    expect(codesOf(extra.state.errors)).toEqual(['RATE_LIMITED']);
    expect(open.every((s) => s.state.errors === null)).toBe(true);
    for (const s of open) s.dispose();
    await waitFor(async () => (await consumersOf(runId)) === 0, { what: 'the consumer to be removed' });
  });

  it('refuses WebSocket upgrades on any path but /graphql', async () => {
    const refused = await new Promise<string>((resolve) => {
      const ws = new WebSocket(h.wsUrl.replace('/graphql', '/elsewhere'), 'graphql-transport-ws');
      ws.onopen = () => resolve('opened');
      ws.onerror = () => resolve('refused');
    });
    expect(refused).toBe('refused');
  });

  it('runUpdated of another organization’s run is NOT_FOUND and reads nothing', async () => {
    const runId = await seedRun(h, a, await seedJob(h, a));
    await progress(runId, a.orgId, 10, 1);
    const sub = collectRun<RunEvent>(client(b), runId, 'kind');
    await waitFor(() => sub.state.errors, { what: 'the subscription to be refused' });
    expect(codesOf(sub.state.errors)).toContain('NOT_FOUND');
    expect(sub.state.items).toEqual([]);
    expect(await consumersOf(runId)).toBe(0);
  });

  it('runsFeed delivers every run event of the caller’s organization from now on, and never another’s', async () => {
    const jobId = await seedJob(h, a);
    const runA1 = await seedRun(h, a, jobId);
    const runA2 = await seedRun(h, a, jobId);
    const runB = await seedRun(h, b, await seedJob(h, b));
    await progress(runA1, a.orgId, 1, 1); // before subscribing: not delivered

    const feed = collect<RunEvent>(client(a), 'subscription { runsFeed { runId kind percent } }');
    // The consumer starts when the subscription does; ping until the feed is live.
    let ping = 0;
    await waitFor(
      async () => {
        ping += 1;
        await progress(runA1, a.orgId, 1 + ping, ping);
        return feed.state.items.length > 0;
      },
      { what: 'the feed to be live', intervalMs: 200 },
    );
    expect(feed.state.items.every((e) => e.runId === runA1 && e.percent !== 1)).toBe(true);

    for (let i = 1; i <= 5; i++) await progress(runB, b.orgId, i, i);
    await progress(runA2, a.orgId, 50, 5);
    await publish(js, RunSucceededMsg, {
      runId: runA2,
      orgId: a.orgId,
      attempt: 1,
      at: at(),
      outputs: [],
      rows: {},
      timings: {},
    });
    await waitFor(() => feed.state.items.some((e) => e.runId === runA2 && e.kind === 'succeeded'), {
      what: 'run A2’s outcome on the feed',
    });
    // B's events were published before A2's, and the feed is in stream order: had they been sent, they would be here.
    expect(feed.state.items.some((e) => e.runId === runB)).toBe(false);
    expect(feed.state.items.filter((e) => e.runId === runA2).map((e) => e.kind)).toEqual(['progress', 'succeeded']);
    feed.dispose();
  });

  it('status subscription sends the mesh at once and then every interval, with bounds on the interval', async () => {
    const sub = collect<{ at: string; instances: { service: string; instanceId: string }[] }>(
      client(a),
      'subscription { status(intervalSeconds: 1) { at instances { service instanceId } } }',
    );
    await waitFor(() => sub.state.items.length >= 2, { what: 'two status ticks' });
    expect(sub.state.items[0]!.instances).toContainEqual({ service: 'gateway', instanceId: h.svc.ctx.instanceId });
    expect(Date.parse(sub.state.items[1]!.at)).toBeGreaterThan(Date.parse(sub.state.items[0]!.at));
    sub.dispose();

    for (const intervalSeconds of [0, 301]) {
      const bad = collect(client(a), 'subscription($s: Int) { status(intervalSeconds: $s) { at } }', {
        s: intervalSeconds,
      });
      await waitFor(() => bad.state.errors, { what: 'the interval to be refused' });
      expect(codesOf(bad.state.errors)).toContain('BAD_USER_INPUT');
    }
  });
});
