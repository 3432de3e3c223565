import { jetstreamManager } from '@nats-io/jetstream';
import { Job, NotificationLog, OutboxMessage, Run } from '@ppc/lib/db';
import { openArtifactStore } from '@ppc/lib/outputs';
import { waitFor } from '@ppc/lib/testing';
import { reportTypeIds, streams } from '@ppc/proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GatewayHarness, type GqlResult, startGatewayHarness, type Tenant } from '../testing/harness.ts';

// The real gateway (own region, so no other test's consumer takes its tasks) against real NATS and PostgreSQL.
const region = `jobs${process.pid}`;

const JOB = /* GraphQL */ `
  fragment J on Job {
    id name kind reportType account { id name } params output cron timeZone enabled nextRunAt notify
    disabledReason lastSuccessAt meanDurationMs consecutiveFailures createdAt updatedAt
  }
`;
const CREATE = `mutation($input: CreateJobInput!) { createJob(input: $input) { ...J } } ${JOB}`;
const UPDATE = `mutation($id: ID!, $input: UpdateJobInput!) { updateJob(id: $id, input: $input) { ...J } } ${JOB}`;
const DELETE = 'mutation($id: ID!) { deleteJob(id: $id) }';
const ENABLE = `mutation($id: ID!, $enabled: Boolean!) { setJobEnabled(id: $id, enabled: $enabled) { ...J } } ${JOB}`;
const RUN = 'mutation($id: ID!) { runJob(id: $id) { id status trigger queuedAt attempt job { id name } } }';
const GET = `query($id: ID!) { job(id: $id) { ...J } } ${JOB}`;

interface JobView {
  id: string;
  name: string;
  kind: string;
  reportType: string | null;
  account: { id: string; name: string };
  params: Record<string, unknown>;
  output: Record<string, unknown>;
  cron: string | null;
  timeZone: string;
  enabled: boolean;
  nextRunAt: string | null;
  notify: Record<string, unknown>;
  disabledReason: string | null;
  consecutiveFailures: number;
}

const errorOf = (res: GqlResult) => {
  const e = res.body.errors?.[0];
  return { code: e?.extensions?.code, field: e?.extensions?.field, message: e?.message ?? '' };
};

describe('jobs API', () => {
  let h: GatewayHarness;
  let a: Tenant;
  let b: Tenant;

  const validInput = (t: Tenant, over: Record<string, unknown> = {}) => ({
    name: 'Weekly search terms',
    reportType: 'search-terms',
    accountId: t.accountId,
    params: { period: 'last_7_days', minCost: 5 },
    output: { kind: 'xlsx' },
    cron: '0 7 * * 1',
    timeZone: 'Europe/Prague',
    notify: { onFailure: true, recipients: ['ops@example.com'] },
    ...over,
  });

  async function createJob(t: Tenant, over: Record<string, unknown> = {}): Promise<JobView> {
    const res = await h.gql<{ createJob: JobView }>(CREATE, { input: validInput(t, over) }, t);
    expect(res.body.errors).toBeUndefined();
    return res.body.data!.createJob;
  }

  const jobCount = (orgId: string) => h.orm.em.fork().count(Job, { organization: orgId });
  const jobRow = (id: string) => h.orm.em.fork().findOne(Job, { id });

  beforeAll(async () => {
    h = await startGatewayHarness({ PPC_REGION: region });
    a = await h.seedTenant({ name: 'Alpha' });
    b = await h.seedTenant({ name: 'Beta' });
  }, 60_000);
  afterAll(async () => {
    if (!h) return;
    const jsm = await jetstreamManager(h.nc);
    await jsm.streams.purge(streams.reportTasks.name, { filter: `tasks.report.${region}.>` }).catch(() => {});
    await h.close();
  });

  describe('reportTypes', () => {
    it('lists the five report types with their parameter schemas and output kinds', async () => {
      const res = await h.gql<{
        reportTypes: {
          id: string;
          kind: string;
          name: string;
          paramsSchema: Record<string, unknown>;
          outputKinds: string[];
        }[];
      }>('{ reportTypes(kind: report) { id kind name description paramsSchema outputKinds sheets } }', {}, a);
      const types = res.body.data!.reportTypes;
      expect(types.map((t) => t.id).sort()).toEqual([...reportTypeIds].sort());
      expect(types).toHaveLength(5);
      const st = types.find((t) => t.id === 'search-terms')!;
      expect(st.kind).toBe('report');
      expect(st.outputKinds).toEqual(['sheets', 'xlsx', 'csv']);
      expect(st.paramsSchema).toMatchObject({
        type: 'object',
        additionalProperties: false,
        properties: { minCost: { type: 'number', default: 10 }, period: { default: 'last_30_days' } },
      });
    });

    it('lists the URL check as the one entry of kind urlcheck, with its options schema', async () => {
      const res = await h.gql<{ reportTypes: { id: string; kind: string; paramsSchema: { properties: object } }[] }>(
        '{ reportTypes { id kind paramsSchema } }',
        {},
        a,
      );
      const all = res.body.data!.reportTypes;
      expect(all).toHaveLength(6);
      const check = all.filter((t) => t.kind === 'urlcheck');
      expect(check.map((t) => t.id)).toEqual(['urlcheck']);
      expect(Object.keys(check[0]!.paramsSchema.properties)).toContain('maxUrls');
    });

    it('is not shown to an anonymous caller', async () => {
      const res = await h.gql('{ reportTypes { id } }', {}, null);
      expect(errorOf(res).code).toBe('UNAUTHENTICATED');
    });
  });

  describe('createJob', () => {
    it('stores a valid job with its next run computed from the cron in its time zone', async () => {
      const before = Date.now();
      const job = await createJob(a);
      expect(job).toMatchObject({
        name: 'Weekly search terms',
        kind: 'report',
        reportType: 'search-terms',
        account: { id: a.accountId },
        params: { period: 'last_7_days', minCost: 5 },
        output: { kind: 'xlsx' },
        cron: '0 7 * * 1',
        timeZone: 'Europe/Prague',
        enabled: true,
        notify: { onFailure: true, recipients: ['ops@example.com'] },
        disabledReason: null,
        consecutiveFailures: 0,
      });
      const next = new Date(job.nextRunAt!);
      expect(next.getTime()).toBeGreaterThan(before);
      expect(next.getTime() - before).toBeLessThanOrEqual(7 * 86_400_000);
      // 07:00 on a Monday in Prague.
      const local = new Intl.DateTimeFormat('en-GB', {
        timeZone: 'Europe/Prague',
        weekday: 'short',
        hour: '2-digit',
        minute: '2-digit',
        hourCycle: 'h23',
      }).format(next);
      expect(local).toBe('Mon 07:00');
      const row = await jobRow(job.id);
      expect(row?.organization.id).toBe(a.orgId);
      expect(row?.createdBy?.id).toBe(a.userId);
    });

    it('stores a URL check without a report type and an on-demand job without next run', async () => {
      const job = await createJob(a, {
        name: 'Landing pages',
        kind: 'urlcheck',
        reportType: null,
        params: { maxUrls: 500 },
        output: { kind: 'csv' },
        cron: null,
      });
      expect(job).toMatchObject({ kind: 'urlcheck', reportType: null, cron: null, nextRunAt: null });
    });

    const invalid: [string, Record<string, unknown>, string, RegExp][] = [
      ['an empty name', { name: '  ' }, 'input.name', /1 to 200/],
      ['a name over 200 characters', { name: 'x'.repeat(201) }, 'input.name', /1 to 200/],
      ['an unknown report type', { reportType: 'pivot' }, 'input.reportType', /unknown report type/],
      ['a report without a report type', { reportType: null }, 'input.reportType', /required/],
      ['a bad parameter value', { params: { period: 'last_3_days' } }, 'input.params.period', /expected one of/],
      ['a parameter out of range', { params: { minClicks: -1 } }, 'input.params.minClicks', /-1/],
      ['an unknown parameter', { params: { dateRange: 'x' } }, 'input.params.dateRange', /unknown parameter/],
      [
        'a bad date inside a range',
        { params: { period: { start: '2026-02-30', end: '2026-03-01' } } },
        'input.params.period.start',
        /calendar day/,
      ],
      [
        'an unknown URL check option',
        { kind: 'urlcheck', reportType: null, params: { depth: 2 } },
        'input.params.depth',
        /unknown option/,
      ],
      ['an unknown output kind', { output: { kind: 'pdf' } }, 'input.output.kind', /sheets, xlsx, csv/],
      [
        'an output option of another kind',
        { output: { kind: 'csv', spreadsheetId: 'x' } },
        'input.output.spreadsheetId',
        /not an option/,
      ],
      ['a Sheets output for a demo account', { output: { kind: 'sheets' } }, 'input.output.kind', /Google Ads account/],
      ['a six-field cron', { cron: '0 0 7 * * 1' }, 'input.cron', /five fields/],
      ['an invalid cron', { cron: '61 7 * * 1' }, 'input.cron', /not a valid cron/],
      ['an unknown time zone', { timeZone: 'Mars/Olympus' }, 'input.timeZone', /IANA/],
      ['an offset instead of a zone', { timeZone: '+01:00' }, 'input.timeZone', /IANA/],
      [
        'a bad recipient',
        { notify: { recipients: ['ops@example.com', 'nobody'] } },
        'input.notify.recipients[1]',
        /e-mail/,
      ],
      ['a non-boolean notify flag', { notify: { onFailure: 'yes' } }, 'input.notify.onFailure', /true or false/],
      ['an unknown notify setting', { notify: { sms: true } }, 'input.notify.sms', /unknown setting/],
    ];
    it.each(invalid)('refuses %s naming the field, and writes nothing', async (_what, over, field, reason) => {
      const before = await jobCount(a.orgId);
      const res = await h.gql(CREATE, { input: validInput(a, over) }, a);
      expect(errorOf(res)).toMatchObject({ code: 'BAD_USER_INPUT', field });
      expect(errorOf(res).message).toMatch(reason);
      expect(await jobCount(a.orgId)).toBe(before);
    });

    it("answers NOT_FOUND for another organization's account, and writes nothing", async () => {
      const before = await jobCount(a.orgId);
      const res = await h.gql(CREATE, { input: validInput(a, { accountId: b.accountId }) }, a);
      expect(errorOf(res).code).toBe('NOT_FOUND');
      expect(await jobCount(a.orgId)).toBe(before);
      expect(await jobCount(b.orgId)).toBe(0);
    });

    it('is FORBIDDEN to a viewer', async () => {
      const viewer = await h.addMember(a, 'viewer');
      const before = await jobCount(a.orgId);
      const res = await h.gql(CREATE, { input: validInput(a) }, viewer);
      expect(errorOf(res).code).toBe('FORBIDDEN');
      expect(await jobCount(a.orgId)).toBe(before);
      // Reading is still allowed.
      const list = await h.gql<{ jobs: { items: unknown[] } }>('{ jobs { items { id } } }', {}, viewer);
      expect(list.body.data?.jobs.items.length).toBe(before);
    });
  });

  describe('jobs and job', () => {
    it('pages through jobs by name with a cursor and filters them', async () => {
      const t = await h.seedTenant({ name: 'Pager' });
      for (const name of ['c', 'a', 'e', 'b', 'd'])
        await createJob(t, { name, cron: name === 'e' ? null : '0 7 * * 1' });
      await createJob(t, { name: 'f', kind: 'urlcheck', reportType: null, params: {}, output: { kind: 'csv' } });
      const page = (after?: string | null) =>
        h.gql<{ jobs: { items: { name: string }[]; nextCursor: string | null } }>(
          'query($after: String) { jobs(first: 2, after: $after) { items { name } nextCursor } }',
          { after },
          t,
        );
      const names: string[] = [];
      let cursor: string | null | undefined;
      for (let i = 0; i < 5; i++) {
        const res = (await page(cursor)).body.data!.jobs;
        names.push(...res.items.map((j) => j.name));
        cursor = res.nextCursor;
        if (!cursor) break;
      }
      expect(names).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
      expect(cursor).toBeNull();
      const checks = await h.gql<{ jobs: { items: { name: string }[] } }>(
        '{ jobs(filter: { kind: urlcheck }) { items { name } } }',
        {},
        t,
      );
      expect(checks.body.data!.jobs.items.map((j) => j.name)).toEqual(['f']);
      const byAccount = await h.gql<{ jobs: { items: unknown[] } }>(
        'query($id: ID!) { jobs(filter: { accountId: $id, enabled: true }) { items { id } } }',
        { id: t.accountId },
        t,
      );
      expect(byAccount.body.data!.jobs.items).toHaveLength(6);
      const bad = await h.gql('{ jobs(after: "nonsense") { items { id } } }', {}, t);
      expect(errorOf(bad)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
      const tooMany = await h.gql('{ jobs(first: 1000) { items { id } } }', {}, t);
      expect(errorOf(tooMany)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'first' });
    });

    it('reads one job', async () => {
      const job = await createJob(a, { name: 'one' });
      const res = await h.gql<{ job: JobView }>(GET, { id: job.id }, a);
      expect(res.body.data!.job).toMatchObject({ id: job.id, name: 'one', account: { id: a.accountId } });
    });
  });

  describe('updateJob', () => {
    it('changes fields, keeps the schedule slot when the schedule is unchanged, recomputes it when it changes', async () => {
      const job = await createJob(a);
      const renamed = (await h.gql<{ updateJob: JobView }>(UPDATE, { id: job.id, input: { name: 'Renamed' } }, a)).body
        .data!.updateJob;
      expect(renamed).toMatchObject({ name: 'Renamed', nextRunAt: job.nextRunAt, params: job.params });
      const res = await h.gql<{ updateJob: JobView }>(
        UPDATE,
        { id: job.id, input: { cron: '30 6 * * *', timeZone: 'America/New_York', params: { period: 'yesterday' } } },
        a,
      );
      const updated = res.body.data!.updateJob;
      expect(updated).toMatchObject({
        cron: '30 6 * * *',
        timeZone: 'America/New_York',
        params: { period: 'yesterday' },
      });
      expect(updated.nextRunAt).not.toBe(job.nextRunAt);
      expect(new Date(updated.nextRunAt!).getTime() - Date.now()).toBeLessThanOrEqual(86_400_000);
      const onDemand = (await h.gql<{ updateJob: JobView }>(UPDATE, { id: job.id, input: { cron: null } }, a)).body
        .data!.updateJob;
      expect(onDemand).toMatchObject({ cron: null, nextRunAt: null });
    });

    it('validates the merged job and changes nothing when it is invalid', async () => {
      const job = await createJob(a);
      const res = await h.gql(UPDATE, { id: job.id, input: { name: 'new name', params: { minCost: 'lots' } } }, a);
      expect(errorOf(res)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.params.minCost' });
      const row = await jobRow(job.id);
      expect(row?.name).toBe(job.name);
      expect(row?.params).toEqual(job.params);
      const nulled = await h.gql(UPDATE, { id: job.id, input: { output: null } }, a);
      expect(errorOf(nulled)).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.output' });
    });
  });

  describe('setJobEnabled', () => {
    it('disables a job (no next run) and re-enabling schedules the next run from now', async () => {
      const job = await createJob(a, { cron: '*/5 * * * *', timeZone: 'UTC' });
      const off = (await h.gql<{ setJobEnabled: JobView }>(ENABLE, { id: job.id, enabled: false }, a)).body.data!
        .setJobEnabled;
      expect(off).toMatchObject({ enabled: false, nextRunAt: null });
      // As the system would after a failure it cannot recover from: a reason, and a stale slot.
      await h.orm.em.fork().nativeUpdate(Job, { id: job.id }, { disabledReason: 'gone', nextRunAt: new Date(0) });
      const on = (await h.gql<{ setJobEnabled: JobView }>(ENABLE, { id: job.id, enabled: true }, a)).body.data!
        .setJobEnabled;
      expect(on).toMatchObject({ enabled: true, disabledReason: null });
      const next = new Date(on.nextRunAt!).getTime();
      expect(next).toBeGreaterThan(Date.now() - 1000);
      expect(next - Date.now()).toBeLessThanOrEqual(5 * 60_000);
      expect(new Date(on.nextRunAt!).getUTCMinutes() % 5).toBe(0);
    });
  });

  describe('runJob', () => {
    it('queues a manual run with its outbox row, and its task reaches REPORT_TASKS with msg id run.<runId>', async () => {
      const job = await createJob(a, { reportType: 'account-performance', params: { period: 'last_7_days' } });
      const res = await h.gql<{
        runJob: { id: string; status: string; trigger: string; queuedAt: string; attempt: number; job: { id: string } };
      }>(RUN, { id: job.id }, a);
      expect(res.body.errors).toBeUndefined();
      const run = res.body.data!.runJob;
      expect(run).toMatchObject({ status: 'queued', trigger: 'manual', attempt: 1, job: { id: job.id } });
      expect(Date.parse(run.queuedAt)).toBeGreaterThan(Date.now() - 60_000);

      const em = h.orm.em.fork();
      const row = await em.findOneOrFail(Run, { id: run.id });
      expect(row).toMatchObject({ status: 'queued', trigger: 'manual', scheduledFor: null });
      expect(row.organization.id).toBe(a.orgId);
      const outbox = await em.findOneOrFail(OutboxMessage, { run: run.id });
      expect(outbox).toMatchObject({
        type: 'report.task.v1',
        subject: `tasks.report.${region}.account-performance`,
        msgId: `run.${run.id}`,
      });

      const jsm = await jetstreamManager(h.nc);
      const msg = await waitFor(
        async () => {
          const m = await jsm.streams.getMessage(streams.reportTasks.name, {
            last_by_subj: `tasks.report.${region}.account-performance`,
          });
          return m && m.json<{ runId: string }>().runId === run.id ? m : null;
        },
        { timeoutMs: 15_000, what: 'the run task on REPORT_TASKS' },
      );
      expect(msg.header?.get('Nats-Msg-Id')).toBe(`run.${run.id}`);
      expect(msg.json()).toMatchObject({
        runId: run.id,
        jobId: job.id,
        orgId: a.orgId,
        accountId: a.accountId,
        connectionId: a.connectionId,
        platform: 'demo',
        region,
        attempt: 1,
        trigger: 'manual',
        reportType: 'account-performance',
        params: { period: 'last_7_days' },
        output: { kind: 'xlsx' },
      });
      // The relay marked the row sent.
      await waitFor(async () => (await h.orm.em.fork().findOneOrFail(OutboxMessage, { run: run.id })).sentAt, {
        what: 'the outbox row marked sent',
      });
    });

    it('refuses a disabled job with CONFLICT saying why, and queues nothing', async () => {
      const job = await createJob(a);
      await h.orm.em
        .fork()
        .nativeUpdate(Job, { id: job.id }, { enabled: false, disabledReason: 'ad account was removed' });
      const res = await h.gql(RUN, { id: job.id }, a);
      expect(errorOf(res).code).toBe('CONFLICT');
      expect(errorOf(res).message).toMatch(/disabled \(ad account was removed\)/);
      expect(await h.orm.em.fork().count(Run, { job: job.id })).toBe(0);
    });

    it('is FORBIDDEN to a viewer', async () => {
      const job = await createJob(a);
      const viewer = await h.addMember(a, 'viewer');
      expect(errorOf(await h.gql(RUN, { id: job.id }, viewer)).code).toBe('FORBIDDEN');
      expect(await h.orm.em.fork().count(Run, { job: job.id })).toBe(0);
    });
  });

  describe('deleteJob', () => {
    it('refuses with CONFLICT while a run is queued, then deletes the job with its runs, outbox and notification rows', async () => {
      const job = await createJob(a);
      const run = (await h.gql<{ runJob: { id: string } }>(RUN, { id: job.id }, a)).body.data!.runJob;
      const em = h.orm.em.fork();
      em.create(NotificationLog, {
        organization: a.orgId,
        dedupeKey: `run-failed.${run.id}`,
        kind: 'run-failed',
        recipient: 'ops@example.com',
        run: run.id,
        job: job.id,
      });
      await em.flush();

      const refused = await h.gql(DELETE, { id: job.id }, a);
      expect(errorOf(refused).code).toBe('CONFLICT');
      expect(errorOf(refused).message).toMatch(/queued or running/);
      expect(await jobRow(job.id)).not.toBeNull();

      // The run finished with a file in the artifacts store.
      const store = await openArtifactStore(h.nc);
      await store.putBlob({ name: `${run.id}/report.xlsx` }, new TextEncoder().encode('xlsx bytes'));
      expect((await store.info(`${run.id}/report.xlsx`))?.deleted).toBe(false);
      await h.orm.em.fork().nativeUpdate(
        Run,
        { id: run.id },
        {
          status: 'succeeded',
          finishedAt: new Date(),
          outputLinks: [{ kind: 'xlsx', name: 'report.xlsx', url: `/artifacts/${run.id}/report.xlsx` }],
        },
      );
      const res = await h.gql<{ deleteJob: string }>(DELETE, { id: job.id }, a);
      expect(res.body.data?.deleteJob).toBe(job.id);
      const check = h.orm.em.fork();
      expect(await check.count(Job, { id: job.id })).toBe(0);
      expect(await check.count(Run, { id: run.id })).toBe(0);
      expect(await check.count(OutboxMessage, { msgId: `run.${run.id}` })).toBe(0);
      expect(await check.count(NotificationLog, { dedupeKey: `run-failed.${run.id}` })).toBe(0);
      expect(errorOf(await h.gql(GET, { id: job.id }, a)).code).toBe('NOT_FOUND');
      // Its file went with it (a deleted object keeps a tombstone).
      expect((await store.info(`${run.id}/report.xlsx`))?.deleted ?? true).toBe(true);
    });
  });

  describe("another organization's ids", () => {
    it('are NOT_FOUND on every job field and mutation, and nothing changes', async () => {
      const theirs = await createJob(b, { name: 'Beta job' });
      const before = await jobRow(theirs.id);
      const probes: [string, Record<string, unknown>][] = [
        [GET, { id: theirs.id }],
        [UPDATE, { id: theirs.id, input: { name: 'pwned' } }],
        [ENABLE, { id: theirs.id, enabled: false }],
        [RUN, { id: theirs.id }],
        [DELETE, { id: theirs.id }],
        ['query($id: ID!) { jobs(filter: { accountId: $id }) { items { id } } }', { id: b.accountId }],
        [UPDATE, { id: (await createJob(a)).id, input: { accountId: b.accountId } }],
      ];
      for (const [query, vars] of probes) {
        const res = await h.gql(query, vars, a);
        expect(errorOf(res).code, query).toBe('NOT_FOUND');
      }
      // Not an id at all: the same answer, not an internal error.
      expect(errorOf(await h.gql(RUN, { id: 'not-a-uuid' }, a)).code).toBe('NOT_FOUND');
      const after = await jobRow(theirs.id);
      expect(after).toMatchObject({ name: 'Beta job', enabled: true, nextRunAt: before?.nextRunAt });
      expect(await h.orm.em.fork().count(Run, { job: theirs.id })).toBe(0);
    });
  });
});
