// Integration tests against the real PostgreSQL (a fresh database for this file) and the real nats-server.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { MikroORM } from '@mikro-orm/postgresql';
import { headers, ReportTaskMsg, streams } from '@ppc/proto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectNats } from '../nats/connect.ts';
import { ensureStream } from '../nats/provision.ts';
import { uniqueName, waitFor } from '../testing/index.ts';
import { Job, newId, OutboxMessage, Run } from './entities.ts';
import { seedAccount } from './fixtures/seed.ts';
import { freshDatabaseUrl } from './fixtures/test-database.ts';
import { migrate, openDatabase } from './orm.ts';
import { addToOutbox, relayOutboxBatch, startOutboxRelay } from './outbox.ts';

let url: string;
let orm: MikroORM;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let job: { orgId: string; jobId: string; accountId: string; connectionId: string };

beforeAll(async () => {
  url = await freshDatabaseUrl('outbox');
  orm = await openDatabase(url);
  await migrate(orm);
  nc = await connectNats({ servers: inject('natsUrl'), name: 'outbox-test' });
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
  await ensureStream(jsm, streams.reportTasks);
  const seeded = await seedAccount(orm);
  const em = orm.em.fork();
  const j = em.create(Job, {
    organization: seeded.orgId,
    account: seeded.accountId,
    name: 'Weekly',
    reportType: 'campaigns',
    params: {},
    output: { kind: 'csv' },
    notify: {},
  });
  await em.flush();
  job = { orgId: seeded.orgId, jobId: j.id, accountId: seeded.accountId, connectionId: seeded.connectionId };
});
afterAll(async () => {
  await nc?.drain();
  await orm?.close(true);
});

/** A unique region per test, and a report type per run: each run's task lands on its own subject. */
const newRegion = () => uniqueName('r').toLowerCase();

/** Inserts a run and its task's outbox row in one transaction, as the gateway and enqueue-due-jobs do. */
async function enqueueRun(region: string, i: number, opts: { failAfterWrite?: boolean } = {}): Promise<string> {
  const runId = newId();
  await orm.em.fork().transactional(async (em) => {
    em.create(Run, { id: runId, organization: job.orgId, job: job.jobId, trigger: 'manual' });
    addToOutbox(
      em,
      ReportTaskMsg,
      {
        runId,
        jobId: job.jobId,
        orgId: job.orgId,
        accountId: job.accountId,
        connectionId: job.connectionId,
        platform: 'demo',
        region,
        attempt: 1,
        trigger: 'manual',
        enqueuedAt: new Date().toISOString(),
        output: { kind: 'csv' },
        reportType: `rt${i}`,
        params: { i },
      },
      { organizationId: job.orgId, runId },
    );
    await em.flush();
    if (opts.failAfterWrite) throw new Error('rolled back on purpose');
  });
  return runId;
}

/** Messages the stream holds per subject under the region. */
async function storedPerSubject(region: string): Promise<Record<string, number>> {
  const info = await jsm.streams.info(streams.reportTasks.name, { subjects_filter: `tasks.report.${region}.>` });
  return (info.state.subjects ?? {}) as Record<string, number>;
}

const unsent = (region: string) =>
  orm.em.fork().count(OutboxMessage, { sentAt: null, subject: { $like: `tasks.report.${region}.%` } });

async function getMessage(stream: string, query: { last_by_subj: string }) {
  const msg = await jsm.streams.getMessage(stream, query);
  if (!msg) throw new Error(`no message on ${query.last_by_subj}`);
  return msg;
}

const fixture = fileURLToPath(new URL('./fixtures/relay-process.ts', import.meta.url));

/** Starts a relay process; resolves with the line it printed once it reached `CRASH_AT`, or on exit. */
function relayProcess(env: Record<string, string>) {
  const child = spawn(process.execPath, [fixture], {
    env: { ...process.env, DATABASE_URL: url, NATS_URL: inject('natsUrl'), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  return { child, exited, output: () => out, errors: () => err };
}

describe('outbox', () => {
  it('writes the outbox row in the run transaction: a rolled-back run leaves neither', async () => {
    const region = newRegion();
    await expect(enqueueRun(region, 1, { failAfterWrite: true })).rejects.toThrow('rolled back on purpose');
    const em = orm.em.fork();
    expect(await em.count(OutboxMessage, { subject: { $like: `tasks.report.${region}.%` } })).toBe(0);
    const runId = await enqueueRun(region, 2);
    const row = await em.findOneOrFail(OutboxMessage, { run: runId });
    expect(row.msgId).toBe(`run.${runId}`);
    expect(row.subject).toBe(`tasks.report.${region}.rt2`);
    expect(row.type).toBe('report.task.v1');
    expect(await em.count(Run, { id: runId })).toBe(1);
  });

  it('refuses an invalid task body before writing anything', async () => {
    const em = orm.em.fork();
    expect(() => addToOutbox(em, ReportTaskMsg, { runId: 'a.b' } as never, { organizationId: job.orgId })).toThrow();
    expect(em.getUnitOfWork().getPersistStack().size).toBe(0);
  });

  it('publishes unsent rows with their msg id and type headers, then marks them sent', async () => {
    const region = newRegion();
    const runIds = [await enqueueRun(region, 1), await enqueueRun(region, 2), await enqueueRun(region, 3)];
    const res = await relayOutboxBatch(orm, js);
    expect(res.sent).toBeGreaterThanOrEqual(3);
    expect(await unsent(region)).toBe(0);
    expect(await storedPerSubject(region)).toEqual({
      [`tasks.report.${region}.rt1`]: 1,
      [`tasks.report.${region}.rt2`]: 1,
      [`tasks.report.${region}.rt3`]: 1,
    });
    const msg = await getMessage(streams.reportTasks.name, { last_by_subj: `tasks.report.${region}.rt2` });
    expect(msg.header.get(headers.msgId)).toBe(`run.${runIds[1]}`);
    expect(msg.header.get(headers.type)).toBe('report.task.v1');
    expect(msg.json<{ runId: string }>().runId).toBe(runIds[1]);
    const rows = await orm.em.fork().find(OutboxMessage, { run: { $in: runIds } });
    for (const r of rows) {
      expect(r.sentAt).toBeInstanceOf(Date);
      expect(r.attempts).toBe(1);
    }
  });

  it('a relay SIGKILLed after claiming a row, before publishing, loses nothing: the next relay sends it once', async () => {
    const region = newRegion();
    const runId = await enqueueRun(region, 1);
    const p = relayProcess({ CRASH_AT: 'before-publish', BATCH_SIZE: '1000' });
    await waitFor(() => p.output().includes('at before-publish'), { what: 'relay to claim', timeoutMs: 20_000 });
    expect(await storedPerSubject(region)).toEqual({});
    p.child.kill('SIGKILL');
    await p.exited;
    // The killed relay's transaction is rolled back by PostgreSQL: the row is unsent and unlocked again.
    await waitFor(async () => (await unsent(region)) === 1, { what: 'row still unsent after the crash' });
    const next = relayProcess({});
    expect(await next.exited).toBe(0);
    expect(await unsent(region)).toBe(0);
    expect(await storedPerSubject(region)).toEqual({ [`tasks.report.${region}.rt1`]: 1 });
    const msg = await getMessage(streams.reportTasks.name, { last_by_subj: `tasks.report.${region}.rt1` });
    expect(msg.header.get(headers.msgId)).toBe(`run.${runId}`);
  });

  it('a relay SIGKILLed after publishing, before marking sent, does not queue the run twice', async () => {
    const region = newRegion();
    await enqueueRun(region, 1);
    const p = relayProcess({ CRASH_AT: 'after-publish', BATCH_SIZE: '1000' });
    await waitFor(() => p.output().includes('at after-publish'), { what: 'relay to publish', timeoutMs: 20_000 });
    expect(await storedPerSubject(region)).toEqual({ [`tasks.report.${region}.rt1`]: 1 });
    p.child.kill('SIGKILL');
    await p.exited;
    await waitFor(async () => (await unsent(region)) === 1, { what: 'row still unsent after the crash' });
    const next = relayProcess({});
    expect(await next.exited).toBe(0);
    // The republish carried the same msg id, and the stream's duplicate window dropped it.
    expect(next.output()).toMatch(/^done [1-9]\d* [1-9]\d*$/m);
    expect(await unsent(region)).toBe(0);
    expect(await storedPerSubject(region)).toEqual({ [`tasks.report.${region}.rt1`]: 1 });
  });

  it('two relays racing over 200 rows never publish the same row (SKIP LOCKED), and each run is stored once', async () => {
    const region = newRegion();
    const n = 200;
    await Promise.all(Array.from({ length: n }, (_, i) => enqueueRun(region, i)));
    const published: string[] = [];
    const hooks = { afterPublish: (row: OutboxMessage) => void published.push(row.msgId) };
    const a = startOutboxRelay(orm, js, { batchSize: 10, pollIntervalMs: 20, hooks });
    const b = startOutboxRelay(orm, js, { batchSize: 10, pollIntervalMs: 20, hooks });
    await waitFor(async () => (await unsent(region)) === 0, { what: 'all rows sent', timeoutMs: 30_000 });
    await Promise.all([a.stop(), b.stop()]);
    const mine = published.filter((id) => id.startsWith('run.'));
    expect(new Set(mine).size).toBe(mine.length);
    expect(a.stats.sent).toBeGreaterThan(0);
    expect(b.stats.sent).toBeGreaterThan(0);
    expect(a.stats.duplicates + b.stats.duplicates).toBe(0);
    const stored = await storedPerSubject(region);
    expect(Object.keys(stored)).toHaveLength(n);
    expect(Object.values(stored).every((c) => c === 1)).toBe(true);
  });
});
