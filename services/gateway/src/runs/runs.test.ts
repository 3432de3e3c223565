import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Run } from '@ppc/lib/db';
import { deadLetter } from '@ppc/lib/nats';
import { finishedAttempt } from '@ppc/lib/runs';
import { runEventsOf, waitFor } from '@ppc/lib/testing';
import { headers, streams, subjects } from '@ppc/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureStream } from '../../../../lib/src/nats/provision.ts';
import { type GatewayHarness, startGatewayHarness, type Tenant } from '../testing/harness.ts';
import { seedAccount, seedJob, seedRun, storedRun } from './testing.ts';

const RUN_FIELDS = `id job { id name } trigger status phase progress attempt queuedAt startedAt finishedAt timings
  rowCounts errorCode errorMessage workerInstance outputs { kind name url }`;
const RUNS = `query($filter: RunFilter, $first: Int, $after: String) {
  runs(filter: $filter, first: $first, after: $after) { items { id status queuedAt job { id } } nextCursor } }`;

interface Page {
  runs: { items: { id: string; status: string; queuedAt: string; job: { id: string } }[]; nextCursor: string | null };
}

describe('runs API', () => {
  let h: GatewayHarness;
  let a: Tenant;
  let b: Tenant;
  const region = `gw-runs-${process.pid}`;

  beforeAll(async () => {
    h = await startGatewayHarness({ PPC_REGION: region });
    a = await h.seedTenant({ name: 'Acme' });
    b = await h.seedTenant({ name: 'Globex' });
  }, 60_000);
  afterAll(() => h?.close());

  async function allPages(filter: Record<string, unknown> | null, first: number, as: Tenant = a) {
    const ids: string[] = [];
    let after: string | null = null;
    for (let pages = 0; pages < 100; pages++) {
      const res: Awaited<ReturnType<typeof h.gql<Page>>> = await h.gql<Page>(RUNS, { filter, first, after }, as);
      expect(res.body.errors).toBeUndefined();
      const page: Page['runs'] = res.body.data!.runs;
      expect(page.items.length).toBeLessThanOrEqual(first);
      ids.push(...page.items.map((r) => r.id));
      if (!page.nextCursor) return ids;
      after = page.nextCursor;
    }
    throw new Error('more than 100 pages');
  }

  describe('listing', () => {
    let jobA1: string;
    let jobA2: string;
    let account2: string;
    const seeded: { id: string; job: string; status: string; queuedAt: Date }[] = [];
    const base = Date.parse('2026-10-01T00:00:00Z');

    beforeAll(async () => {
      account2 = await seedAccount(h, a, 'Second account');
      jobA1 = await seedJob(h, a, { name: 'Terms' });
      jobA2 = await seedJob(h, a, { name: 'Budgets', accountId: account2 });
      const statuses = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
      for (let i = 0; i < 120; i++) {
        // Groups of three share a millisecond: the id decides their order, and a cursor must not skip any.
        const queuedAt = new Date(base + Math.floor(i / 3) * 60_000);
        const job = i % 4 === 0 ? jobA2 : jobA1;
        const status = statuses[i % statuses.length]!;
        seeded.push({ id: await seedRun(h, a, job, { status, queuedAt }), job, status, queuedAt });
      }
      // Microseconds apart within one millisecond, which a JS Date cannot tell apart.
      const em = h.orm.em.fork();
      await em.execute(`update runs set queued_at = queued_at + interval '1 microsecond' where id = ?`, [
        seeded[30]!.id,
      ]);
      await em.execute(`update runs set queued_at = queued_at + interval '2 microseconds' where id = ?`, [
        seeded[31]!.id,
      ]);
      // Another organization's runs at the same times never show up.
      const jobB = await seedJob(h, b);
      for (let i = 0; i < 10; i++) await seedRun(h, b, jobB, { queuedAt: new Date(base + i * 60_000) });
    }, 60_000);

    /** The expected order: queued_at desc, id desc, straight from the table. */
    async function expectedOrder(where = '', params: unknown[] = []) {
      const rows = await h.orm.em.fork().execute<{ id: string }[]>(
        `select r.id from runs r join jobs j on j.id = r.job_id where r.organization_id = ? ${where}
           order by r.queued_at desc, r.id desc`,
        [a.orgId, ...params],
      );
      return rows.map((r) => r.id);
    }

    it('pages through 120 runs newest first, with no duplicates and no gaps', async () => {
      const ids = await allPages(null, 25);
      expect(ids).toHaveLength(120);
      expect(new Set(ids).size).toBe(120);
      expect(ids).toEqual(await expectedOrder());
      // Newest first, and the microsecond-apart pair in microsecond order.
      expect(ids.indexOf(seeded[31]!.id)).toBeLessThan(ids.indexOf(seeded[30]!.id));
    });

    it('gives the same sequence whatever the page size', async () => {
      const expected = await expectedOrder();
      expect(await allPages(null, 7)).toEqual(expected);
      expect(await allPages(null, 200)).toEqual(expected);
      const firstPage = await h.gql<Page>(RUNS, { first: 3 }, a);
      expect(firstPage.body.data!.runs.items.map((r) => r.id)).toEqual(expected.slice(0, 3));
    });

    it('defaults to 50 per page', async () => {
      const res = await h.gql<Page>(RUNS, {}, a);
      expect(res.body.data!.runs.items).toHaveLength(50);
      expect(res.body.data!.runs.nextCursor).toEqual(expect.any(String));
    });

    it('filters by job, account, status and time, paging within the filter', async () => {
      const byJob = await allPages({ jobId: jobA2 }, 8);
      expect(byJob).toEqual(await expectedOrder('and r.job_id = ?', [jobA2]));
      expect(byJob).toHaveLength(seeded.filter((s) => s.job === jobA2).length);

      const byAccount = await allPages({ accountId: account2 }, 8);
      expect(byAccount).toEqual(byJob); // jobA2 is the only job on account2
      expect(await allPages({ accountId: a.accountId }, 50)).toHaveLength(seeded.filter((s) => s.job === jobA1).length);

      const failed = await allPages({ status: 'failed' }, 5);
      expect(failed.sort()).toEqual(
        seeded
          .filter((s) => s.status === 'failed')
          .map((s) => s.id)
          .sort(),
      );

      // from inclusive, to exclusive
      const from = new Date(base + 10 * 60_000);
      const to = new Date(base + 20 * 60_000);
      const inWindow = await allPages({ from: from.toISOString(), to: to.toISOString() }, 4);
      expect(inWindow).toHaveLength(30);
      expect(inWindow).toEqual(await expectedOrder('and r.queued_at >= ? and r.queued_at < ?', [from, to]));

      const combined = await allPages({ jobId: jobA1, status: 'succeeded', from: from.toISOString() }, 3);
      expect(combined.sort()).toEqual(
        seeded
          .filter((s) => s.job === jobA1 && s.status === 'succeeded' && s.queuedAt >= from)
          .map((s) => s.id)
          .sort(),
      );
    });

    it('shows another organization nothing of these runs, even filtered by their job', async () => {
      const res = await h.gql<Page>(RUNS, { filter: { jobId: jobA1 }, first: 200 }, b);
      expect(res.body.data!.runs.items).toEqual([]);
      expect(await allPages(null, 200, b)).toHaveLength(10);
    });

    it('refuses a cursor it did not make, and page sizes out of bounds, naming the argument', async () => {
      for (const after of ['nonsense', 'bm9wZQ', Buffer.from('r1|2026-01-01T00:00:00Z|x').toString('base64url'), '']) {
        const res = await h.gql(RUNS, { after }, a);
        expect(res.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
      }
      for (const first of [0, 201, -5]) {
        const res = await h.gql(RUNS, { first }, a);
        expect(res.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'first' });
      }
      const badId = await h.gql(RUNS, { filter: { jobId: 'not-an-id' } }, a);
      expect(badId.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'filter.jobId' });
    });

    it('needs a signed-in caller', async () => {
      const res = await h.gql(RUNS, {}, null);
      expect(res.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    });
  });

  describe('run(id)', () => {
    it('shows a run with its timings, row counts and outputs, files as gateway download URLs', async () => {
      const job = await seedJob(h, a, { name: 'Weekly terms' });
      const id = await seedRun(h, a, job, {
        status: 'succeeded',
        outputLinks: [
          { kind: 'xlsx', name: 'Weekly terms.xlsx', url: '/artifacts/whatever' },
          { kind: 'csv', name: 'Terms #1.csv', url: '/artifacts/x/Terms%20%231.csv' },
          { kind: 'sheets', name: 'Weekly terms', url: 'https://docs.google.com/spreadsheets/d/abc/edit' },
        ],
      });
      const res = await h.gql<{ run: Record<string, unknown> }>(
        `query($id: ID!) { run(id: $id) { ${RUN_FIELDS} } }`,
        { id },
        a,
      );
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data!.run).toMatchObject({
        id,
        job: { id: job, name: 'Weekly terms' },
        trigger: 'manual',
        status: 'succeeded',
        phase: 'processing',
        progress: 100,
        attempt: 1,
        timings: { total: 4000 },
        rowCounts: { Terms: 42 },
        workerInstance: 'report-worker-test',
        errorCode: null,
        outputs: [
          { kind: 'xlsx', name: 'Weekly terms.xlsx', url: `/artifacts/${id}/Weekly%20terms.xlsx` },
          { kind: 'csv', name: 'Terms #1.csv', url: `/artifacts/${id}/Terms%20%231.csv` },
          { kind: 'sheets', name: 'Weekly terms', url: 'https://docs.google.com/spreadsheets/d/abc/edit' },
        ],
      });
      expect(Date.parse(res.body.data!.run.finishedAt as string)).toBeGreaterThan(
        Date.parse(res.body.data!.run.queuedAt as string),
      );
    });

    it('answers NOT_FOUND for another organization’s run and for ids that are no run', async () => {
      const id = await seedRun(h, a, await seedJob(h, a));
      for (const probe of [id, crypto.randomUUID(), 'garbage']) {
        const res = await h.gql(`query($id: ID!) { run(id: $id) { id } }`, { id: probe }, probe === id ? b : a);
        expect(res.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
        expect(res.body.data?.run ?? null).toBeNull();
      }
    });
  });

  describe('cancelRun', () => {
    const CANCEL = `mutation($id: ID!) { cancelRun(id: $id) { id status } }`;

    async function cancelCommands(runId: string) {
      const got: Record<string, unknown>[] = [];
      const sub = h.nc.subscribe(subjects.runCancel(runId), {
        callback: (_err, m) => {
          got.push(m.json<Record<string, unknown>>());
        },
      });
      await h.nc.flush();
      return { got, stop: () => sub.unsubscribe() };
    }

    it('sends cmd.run.<id>.cancel for a running run and records the cancel as its `cancelled` event', async () => {
      const id = await seedRun(h, a, await seedJob(h, a), { status: 'running', attempt: 2 });
      const cmds = await cancelCommands(id);
      const res = await h.gql<{ cancelRun: { id: string } }>(CANCEL, { id }, a);
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data!.cancelRun.id).toBe(id);
      await waitFor(() => cmds.got.length === 1, { what: 'the cancel command' });
      expect(cmds.got[0]).toMatchObject({ runId: id, orgId: a.orgId, requestedBy: a.userId });
      cmds.stop();
      const events = await runEventsOf(h.nc, id);
      expect(events.map(([kind]) => kind)).toEqual(['cancelled']);
      expect(events[0]![1]).toMatchObject({ runId: id, orgId: a.orgId, attempt: 2 });
    });

    it('ends a queued run: a worker that takes its task later finds the attempt finished and skips it', async () => {
      const id = await seedRun(h, a, await seedJob(h, a), { status: 'queued' });
      const cmds = await cancelCommands(id);
      expect((await h.gql(CANCEL, { id }, a)).body.errors).toBeUndefined();
      await waitFor(() => cmds.got.length === 1, { what: 'the cancel command' });
      cmds.stop();
      const jsm = await jetstreamManager(h.nc);
      expect(await finishedAttempt(jsm, { runId: id, orgId: a.orgId, attempt: 1 })).toBe('cancelled');
    });

    it('refuses finished runs with CONFLICT and publishes nothing', async () => {
      const job = await seedJob(h, a);
      for (const status of ['succeeded', 'failed', 'cancelled'] as const) {
        const id = await seedRun(h, a, job, { status });
        const res = await h.gql(CANCEL, { id }, a);
        expect(res.body.errors?.[0]?.extensions?.code).toBe('CONFLICT');
        expect(res.body.errors?.[0]?.message).toContain(status);
        expect(await runEventsOf(h.nc, id)).toEqual([]);
      }
    });

    it('answers NOT_FOUND for another organization’s run and touches nothing', async () => {
      const id = await seedRun(h, a, await seedJob(h, a), { status: 'running' });
      const cmds = await cancelCommands(id);
      const res = await h.gql(CANCEL, { id }, b);
      expect(res.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
      await h.nc.flush();
      expect(cmds.got).toEqual([]);
      cmds.stop();
      expect(await runEventsOf(h.nc, id)).toEqual([]);
      expect((await storedRun(h, id))?.status).toBe('running');
    });

    it('needs the run scope: a viewer is FORBIDDEN', async () => {
      const viewer = await h.addMember(a, 'viewer');
      const id = await seedRun(h, a, await seedJob(h, a), { status: 'running' });
      const res = await h.gql(CANCEL, { id }, viewer);
      expect(res.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      expect(await runEventsOf(h.nc, id)).toEqual([]);
    });
  });

  it('shows a run another module returns as an entity (runJob) with every Run field', async () => {
    const job = await seedJob(h, a, { name: 'Run me now' });
    const res = await h.gql<{ runJob: Record<string, unknown> }>(
      `mutation($id: ID!) { runJob(id: $id) { ${RUN_FIELDS} } }`,
      { id: job },
      a,
    );
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data!.runJob).toMatchObject({
      job: { id: job, name: 'Run me now' },
      status: 'queued',
      progress: 0,
      attempt: 1,
      outputs: [],
    });
  });

  describe('retryRun', () => {
    const RETRY = `mutation($id: ID!) { retryRun(id: $id) { id status attempt trigger job { id name } } }`;

    it('queues a new run of the job one attempt later, and its task reaches REPORT_TASKS', async () => {
      const job = await seedJob(h, a, { name: 'Retry me' });
      const failed = await seedRun(h, a, job, { status: 'failed', attempt: 2, errorCode: 'UPSTREAM' });
      const res = await h.gql<{ retryRun: { id: string; status: string; attempt: number; trigger: string } }>(
        RETRY,
        { id: failed },
        a,
      );
      expect(res.body.errors).toBeUndefined();
      const created = res.body.data!.retryRun;
      expect(created).toMatchObject({
        status: 'queued',
        attempt: 3,
        trigger: 'replay',
        job: { id: job, name: 'Retry me' },
      });
      expect(created.id).not.toBe(failed);
      expect(await storedRun(h, created.id)).toMatchObject({ status: 'queued', attempt: 3, trigger: 'replay' });

      const jsm = await jetstreamManager(h.nc);
      const task = await waitFor(
        () =>
          jsm.streams.getMessage(streams.reportTasks.name, {
            last_by_subj: subjects.reportTask(region, 'search-terms'),
          }),
        { what: 'the retried run’s task on REPORT_TASKS', timeoutMs: 15_000 },
      );
      expect(task.json()).toMatchObject({
        runId: created.id,
        jobId: job,
        orgId: a.orgId,
        attempt: 3,
        trigger: 'replay',
      });
      expect(task.header.get(headers.msgId)).toBe(`run.${created.id}.3`);
    });

    it('retries cancelled runs too, and refuses queued, running and succeeded ones with CONFLICT', async () => {
      const job = await seedJob(h, a);
      const cancelled = await seedRun(h, a, job, { status: 'cancelled' });
      expect((await h.gql(RETRY, { id: cancelled }, a)).body.errors).toBeUndefined();
      for (const status of ['queued', 'running', 'succeeded'] as const) {
        const id = await seedRun(h, a, job, { status });
        const before = await h.orm.em.fork().count(Run, { job });
        const res = await h.gql(RETRY, { id }, a);
        expect(res.body.errors?.[0]?.extensions?.code).toBe('CONFLICT');
        expect(await h.orm.em.fork().count(Run, { job })).toBe(before);
      }
    });

    it('answers NOT_FOUND for another organization’s run and queues nothing', async () => {
      const job = await seedJob(h, a);
      const id = await seedRun(h, a, job, { status: 'failed' });
      const res = await h.gql(RETRY, { id }, b);
      expect(res.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
      expect(await h.orm.em.fork().count(Run, { job })).toBe(1);
    });
  });

  describe('replayDeadLetter', () => {
    const left: number[] = [];
    afterAll(async () => {
      const jsm = await jetstreamManager(h.nc);
      for (const seq of left) await jsm.streams.deleteMessage(streams.deadLetters.name, seq).catch(() => {});
    });
    const REPLAY = `mutation($seq: Float!) { replayDeadLetter(seq: $seq) { seq subject type stream replayedSeq } }`;

    async function deadLetterOf(orgId: string) {
      const runId = crypto.randomUUID();
      const body = { runId, orgId, attempt: 1, at: new Date().toISOString(), phase: 'fetching', percent: 5, rows: 1 };
      const jsm = await jetstreamManager(h.nc);
      await ensureStream(jsm, streams.deadLetters);
      const subject = subjects.runEvent(runId, 'progress');
      const ack = await deadLetter(
        jetstream(h.nc),
        { subject, data: new TextEncoder().encode(JSON.stringify(body)) },
        {
          reason: 'test',
          stream: 'EVENTS',
          consumer: 'test',
          streamSeq: Math.floor(Math.random() * 1e12),
          deliveries: 5,
        },
      );
      left.push(ack.seq);
      return { seq: ack.seq, runId, subject };
    }

    it('is for owners only: a member is FORBIDDEN and the letter stays', async () => {
      const letter = await deadLetterOf(a.orgId);
      const member = await h.addMember(a, 'member');
      const res = await h.gql(REPLAY, { seq: letter.seq }, member);
      expect(res.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      const jsm = await jetstreamManager(h.nc);
      expect(await jsm.streams.getMessage(streams.deadLetters.name, { seq: letter.seq })).not.toBeNull();
    });

    it('republishes an owner’s letter to its original subject and removes it from DEAD_LETTERS', async () => {
      const letter = await deadLetterOf(a.orgId);
      const res = await h.gql<{ replayDeadLetter: Record<string, unknown> }>(REPLAY, { seq: letter.seq }, a);
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data!.replayDeadLetter).toMatchObject({
        seq: letter.seq,
        subject: letter.subject,
        stream: 'EVENTS',
      });
      const events = await runEventsOf(h.nc, letter.runId);
      expect(events.map(([k, b]) => [k, b.percent])).toEqual([['progress', 5]]);
      const jsm = await jetstreamManager(h.nc);
      expect(await jsm.streams.getMessage(streams.deadLetters.name, { seq: letter.seq }).catch(() => null)).toBeNull();
    });

    it('answers NOT_FOUND for another organization’s letter and for sequences that hold none', async () => {
      const letter = await deadLetterOf(b.orgId);
      const res = await h.gql(REPLAY, { seq: letter.seq }, a);
      expect(res.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
      expect(await runEventsOf(h.nc, letter.runId)).toEqual([]);
      const missing = await h.gql(REPLAY, { seq: 9_000_000_000 }, a);
      expect(missing.body.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    });
  });
});
