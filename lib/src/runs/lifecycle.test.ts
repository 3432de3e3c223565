// Integration tests against the harness' real nats-server (JetStream): events land on the real EVENTS
// stream, cancels travel over core NATS.
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { streams, subjects } from '@ppc/proto';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { newId } from '../db/entities.ts';
import { PermanentError, RetryableError } from '../errors/index.ts';
import { connectNats, type NatsConnection } from '../nats/connect.ts';
import { provision } from '../nats/provision.ts';
import { runEventsOf, waitFor } from '../testing/index.ts';
import { handleRunTask, publishRunFailed, type RunDeps, RunTimeLimitError } from './lifecycle.ts';

let nc: NatsConnection;
let deps: RunDeps;
const hctx = () => ({ signal: new AbortController().signal, deliveryCount: 1, traceparent: undefined });
const task = (attempt = 1) => ({ runId: newId(), orgId: newId(), attempt });

const eventsOf = (runId: string) => runEventsOf(nc, runId);

beforeAll(async () => {
  nc = await connectNats({ servers: inject('natsUrl'), name: 'runs-lifecycle-test' });
  const jsm = await jetstreamManager(nc);
  await provision(nc, jsm, { streams: [streams.events] });
  deps = { nc, js: jetstream(nc), jsm, log: pino({ level: 'silent' }), worker: 'w-test', region: 'local' };
});
afterAll(async () => {
  await nc?.drain();
});

describe('a run task', () => {
  it('publishes started, throttled progress and succeeded with the result, in that order', async () => {
    const t = task();
    const outcome = await handleRunTask(
      { ...deps, progressIntervalMs: 200 },
      t,
      hctx(),
      { timeLimitMs: 10_000 },
      async ({ progress }) => {
        for (let i = 1; i <= 500; i++) progress({ phase: 'fetching', percent: i / 10, rows: i * 10 });
        progress({ phase: 'processing', percent: 60, rows: 5000 });
        return { outputs: [{ kind: 'csv', name: 'a.csv', url: '/artifacts/x/a.csv' }], rows: { a: 5000 }, timings: {} };
      },
    );
    expect(outcome).toBe('succeeded');
    const events = await eventsOf(t.runId);
    const kinds = events.map(([k]) => k);
    expect(kinds[0]).toBe('started');
    expect(kinds.at(-1)).toBe('succeeded');
    // 501 updates within a few milliseconds: the first of each phase goes out at once, the rest wait.
    const progress = events.filter(([k]) => k === 'progress').map(([, b]) => b);
    expect(progress.length).toBeGreaterThanOrEqual(2);
    expect(progress.length).toBeLessThanOrEqual(4);
    expect(progress.map((p) => p.phase)).toContain('processing');
    expect(events[0]![1]).toMatchObject({ worker: 'w-test', region: 'local', attempt: 1 });
    expect(events.at(-1)![1]).toMatchObject({ rows: { a: 5000 }, outputs: [{ name: 'a.csv' }] });
  });

  it('does nothing when redelivered after its attempt succeeded, but runs a new attempt', async () => {
    const t = task();
    const ok = async () => ({ outputs: [], rows: {}, timings: {} });
    expect(await handleRunTask(deps, t, hctx(), { timeLimitMs: 5000 }, ok)).toBe('succeeded');
    let ran = false;
    const again = await handleRunTask(deps, t, hctx(), { timeLimitMs: 5000 }, async () => {
      ran = true;
      return ok();
    });
    expect(again).toBe('skipped');
    expect(ran).toBe(false);
    expect(await handleRunTask(deps, { ...t, attempt: 2 }, hctx(), { timeLimitMs: 5000 }, ok)).toBe('succeeded');
  });

  it('stops its work and publishes cancelled when cmd.run.<id>.cancel arrives', async () => {
    const t = task();
    const started = Date.now();
    const running = handleRunTask(deps, t, hctx(), { timeLimitMs: 30_000 }, ({ signal }) => {
      return new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('aborted'))));
    });
    await waitFor(async () => (await eventsOf(t.runId)).some(([k]) => k === 'started'), { what: 'started event' });
    nc.publish(subjects.runCancel(t.runId), JSON.stringify({ reason: 'not needed any more' }));
    expect(await running).toBe('cancelled');
    expect(Date.now() - started).toBeLessThan(5000);
    const last = (await eventsOf(t.runId)).at(-1)!;
    expect(last).toEqual(['cancelled', expect.objectContaining({ reason: 'not needed any more' })]);
  });

  it('fails permanently past its time limit, without a succeeded event', async () => {
    const t = task();
    const run = handleRunTask(deps, t, hctx(), { timeLimitMs: 150 }, ({ signal }) => {
      return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
    });
    const err = await run.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunTimeLimitError);
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).code).toBe('RUN_TIME_LIMIT');
    expect((await eventsOf(t.runId)).map(([k]) => k)).toEqual(['started']);
  });

  it('passes a retryable error on for a nak, publishing nothing terminal', async () => {
    const t = task();
    const err = await handleRunTask(deps, t, hctx(), { timeLimitMs: 5000 }, async () => {
      throw new RetryableError('platform busy', { code: 'ADS_RATE_LIMITED', retryAfterMs: 2000 });
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetryableError);
    expect((await eventsOf(t.runId)).map(([k]) => k)).toEqual(['started']);
  });

  it('records a given-up task as failed with its code, message and whether a retry could help', async () => {
    const t = task();
    await publishRunFailed(
      deps.js,
      t,
      new PermanentError('credentials revoked: reconnect the account', { code: 'ADS_AUTH' }),
    );
    const [[kind, body]] = (await eventsOf(t.runId)) as [[string, Record<string, unknown>]];
    expect(kind).toBe('failed');
    expect(body).toMatchObject({
      code: 'ADS_AUTH',
      message: 'credentials revoked: reconnect the account',
      retryable: false,
    });
  });
});
