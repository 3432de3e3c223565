// Integration tests against the real nats-server (JetStream) started by the test harness.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { headers, streams } from '@ppc/proto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { PermanentError, RetryableError } from '../errors/index.ts';
import { uniqueName, waitFor } from '../testing/index.ts';
import { connectNats } from './connect.ts';
import { consume, termRemoves, watchMaxDeliveries } from './consume.ts';
import { testResources } from './fixtures/test-messages.ts';
import { ensureStream, provision } from './provision.ts';
import { publish } from './publish.ts';

let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;

beforeAll(async () => {
  nc = await connectNats({ servers: inject('natsUrl'), name: 'consume-test' });
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
  await ensureStream(jsm, streams.deadLetters);
});
afterAll(() => nc.drain());

async function setup(overrides = {}) {
  const r = testResources(uniqueName('c'), overrides);
  await provision(nc, jsm, { streams: [r.stream], consumers: [r.consumer] });
  return r;
}

const deadLetterFor = (subject: string) =>
  jsm.streams.getMessage(streams.deadLetters.name, { last_by_subj: `dlq.${subject}` }).catch(() => null);

const pendingIn = async (stream: string) => (await jsm.streams.info(stream)).state.messages;

describe('consume', () => {
  it('hands each valid message to the handler once and acks it', async () => {
    const r = await setup();
    const seen: number[] = [];
    const c = await consume(js, r.consumer, [r.Task], async (b) => void seen.push(b.n), { concurrency: 4 });
    for (let i = 0; i < 20; i++) await publish(js, r.Task, { id: `m${i}`, n: i });
    await waitFor(() => seen.length === 20, { what: '20 messages handled' });
    await waitFor(async () => (await pendingIn(r.stream.name)) === 0, { what: 'work queue drained' });
    await c.stop();
    expect(seen.sort((a, b) => a - b)).toEqual([...Array(20).keys()]);
  });

  it('dead-letters an invalid body with the failing field in headers and never retries it', async () => {
    const r = await setup();
    let calls = 0;
    const c = await consume(js, r.consumer, [r.Task], async () => void calls++, { concurrency: 1 });
    const h = natsHeaders();
    h.set(headers.type, r.Task.type);
    await js.publish(r.subject, JSON.stringify({ id: 'x', n: -5 }), { headers: h });
    const dl = await waitFor(() => deadLetterFor(r.subject), { what: 'dead letter' });
    expect(dl.header.get(headers.dlqField)).toBe('/n');
    expect(dl.header.get(headers.dlqReason)).toMatch(/\/n: Expected integer to be greater or equal to 0/);
    expect(dl.header.get(headers.type)).toBe('test.task.v1');
    expect(JSON.parse(new TextDecoder().decode(dl.data))).toEqual({ id: 'x', n: -5 });
    await waitFor(async () => (await pendingIn(r.stream.name)) === 0, { what: 'message terminated' });
    await c.stop();
    expect(calls).toBe(0);
  });

  it('dead-letters a message of an unknown type and one that is not JSON', async () => {
    const r = await setup();
    const c = await consume(js, r.consumer, [r.Task], async () => {}, { concurrency: 1 });
    const h = natsHeaders();
    h.set(headers.type, 'nobody.knows.v9');
    await js.publish(r.subject, '{}', { headers: h });
    const first = await waitFor(() => deadLetterFor(r.subject), { what: 'dead letter' });
    expect(first.header.get(headers.dlqReason)).toBe('unknown message type nobody.knows.v9');
    const h2 = natsHeaders();
    h2.set(headers.type, r.Task.type);
    await js.publish(r.subject, 'not json', { headers: h2 });
    const second = await waitFor(
      async () => {
        const m = await deadLetterFor(r.subject);
        return m && m.seq !== first.seq ? m : null;
      },
      { what: 'second dead letter' },
    );
    expect(second.header.get(headers.dlqReason)).toMatch(/^body is not JSON/);
    await c.stop();
  });

  it('keeps a message alive with working() while the handler outlasts ack wait', async () => {
    const r = await setup({ ackWaitMs: 1000 });
    let calls = 0;
    let done = false;
    const c = await consume(
      js,
      r.consumer,
      [r.Task],
      async () => {
        calls++;
        await new Promise((res) => setTimeout(res, 3500));
        done = true;
      },
      { concurrency: 1 },
    );
    await publish(js, r.Task, { id: 'slow', n: 1 });
    await waitFor(() => done, { what: 'slow handler to finish', timeoutMs: 10_000 });
    await waitFor(async () => (await pendingIn(r.stream.name)) === 0, { what: 'ack' });
    await c.stop();
    expect(calls).toBe(1);
  });

  it('naks a RetryableError with the backoff delay, then succeeds on redelivery', async () => {
    const r = await setup({ backoffMs: [700] });
    const attempts: number[] = [];
    const c = await consume(
      js,
      r.consumer,
      [r.Task],
      async (_b, ctx) => {
        attempts.push(Date.now());
        if (ctx.deliveryCount === 1) throw new RetryableError('rate limited');
      },
      { concurrency: 1 },
    );
    await publish(js, r.Task, { id: 'retry', n: 1 });
    await waitFor(() => attempts.length === 2, { what: 'redelivery' });
    await waitFor(async () => (await pendingIn(r.stream.name)) === 0, { what: 'ack' });
    await c.stop();
    expect(attempts[1]! - attempts[0]!).toBeGreaterThanOrEqual(650);
  });

  it('honours a retry-after on the error over the backoff', async () => {
    const r = await setup({ backoffMs: [5000] });
    const attempts: number[] = [];
    const c = await consume(
      js,
      r.consumer,
      [r.Task],
      async (_b, ctx) => {
        attempts.push(Date.now());
        if (ctx.deliveryCount === 1) throw new RetryableError('429', { retryAfterMs: 300 });
      },
      { concurrency: 1 },
    );
    await publish(js, r.Task, { id: 'ra', n: 1 });
    await waitFor(() => attempts.length === 2, { what: 'redelivery', timeoutMs: 4000 });
    await c.stop();
    expect(attempts[1]! - attempts[0]!).toBeLessThan(3000);
  });

  it('terminates on PermanentError after calling the failure hook, without a redelivery', async () => {
    const r = await setup();
    const failures: string[] = [];
    let calls = 0;
    const c = await consume(
      js,
      r.consumer,
      [r.Task],
      async () => {
        calls++;
        throw new PermanentError('credentials revoked', { code: 'AUTH_REVOKED' });
      },
      { concurrency: 1, onFailure: async (b, err) => void failures.push(`${b.id}:${(err as PermanentError).code}`) },
    );
    await publish(js, r.Task, { id: 'perm', n: 1 });
    await waitFor(() => failures.length === 1, { what: 'failure hook' });
    await waitFor(async () => (await pendingIn(r.stream.name)) === 0, { what: 'term' });
    await c.stop();
    expect(failures).toEqual(['perm:AUTH_REVOKED']);
    expect(calls).toBe(1);
    expect(await deadLetterFor(r.subject)).toBeNull();
  });

  it('dead-letters the message when its last delivery attempt fails', async () => {
    const r = await setup({ maxDeliver: 3, backoffMs: [50] });
    let calls = 0;
    const hooks: boolean[] = [];
    const c = await consume(
      js,
      r.consumer,
      [r.Task],
      async () => {
        calls++;
        throw new Error('flaky upstream');
      },
      { concurrency: 1, onFailure: async (_b, _e, ctx) => void hooks.push(ctx.isLastAttempt) },
    );
    await publish(js, r.Task, { id: 'last', n: 1 });
    const dl = await waitFor(() => deadLetterFor(r.subject), { what: 'dead letter after 3 attempts' });
    await c.stop();
    expect(calls).toBe(3);
    expect(hooks).toEqual([true]);
    expect(dl.header.get(headers.dlqReason)).toBe('failed on last attempt 3/3: flaky upstream');
    expect(dl.header.get(headers.dlqDeliveries)).toBe('3');
    // The copy is written before the original is ended, so the stream empties just after.
    await waitFor(async () => (await pendingIn(r.stream.name)) === 0, { what: 'the dead-lettered message ended' });
  });

  it('never runs more handlers at once than its concurrency, and pulls only for free slots', async () => {
    const r = await setup();
    let running = 0;
    let peak = 0;
    let peakAckPending = 0;
    let handled = 0;
    const c = await consume(
      js,
      r.consumer,
      [r.Task],
      async () => {
        running++;
        peak = Math.max(peak, running);
        const info = await jsm.consumers.info(r.stream.name, r.consumer.durable);
        peakAckPending = Math.max(peakAckPending, info.num_ack_pending);
        await new Promise((res) => setTimeout(res, 30));
        running--;
        handled++;
      },
      { concurrency: 3 },
    );
    await Promise.all(Array.from({ length: 30 }, (_, i) => publish(js, r.Task, { id: `p${i}`, n: i })));
    await waitFor(() => handled === 30, { what: '30 handled' });
    await c.stop();
    expect(peak).toBe(3);
    expect(peakAckPending).toBeLessThanOrEqual(3);
  });

  it('on stop waits for in-flight work, then aborts and hands back what outlives the grace period', async () => {
    const r = await setup({ ackWaitMs: 30_000 });
    let finished = 0;
    let aborted = 0;
    const c = await consume(
      js,
      r.consumer,
      [r.Task],
      async (b, ctx) => {
        const ms = b.n === 0 ? 100 : 60_000;
        await new Promise<void>((res, rej) => {
          const t = setTimeout(res, ms);
          ctx.signal.addEventListener('abort', () => {
            clearTimeout(t);
            aborted++;
            rej(ctx.signal.reason);
          });
        });
        finished++;
      },
      { concurrency: 2 },
    );
    await publish(js, r.Task, { id: 'quick', n: 0 });
    await publish(js, r.Task, { id: 'long', n: 1 });
    await waitFor(() => c.inFlight() === 2, { what: 'both in flight' });
    await c.stop(500);
    expect(finished).toBe(1);
    expect(aborted).toBe(1);
    // The handed-back message is available at once to another consumer, not after ack wait.
    const seen: string[] = [];
    const c2 = await consume(js, r.consumer, [r.Task], async (b) => void seen.push(b.id), { concurrency: 1 });
    await waitFor(() => seen.length === 1, { what: 'redelivery of the long task', timeoutMs: 5000 });
    await c2.stop();
    expect(seen).toEqual(['long']);
  });

  it('redelivers a message whose consumer process was killed with SIGKILL mid-handler, and it completes once', async () => {
    const r = await setup({ ackWaitMs: 1500 });
    const child = startFixtureConsumer(r.stream.name, '{"ackWaitMs":1500}');
    await waitFor(() => child.out().includes('ready'), { what: 'fixture consumer ready' });
    await publish(js, r.Task, { id: 'crash', n: 1 });
    await waitFor(() => child.out().includes('started crash 1'), { what: 'fixture started the task' });
    await child.kill();

    const completions: number[] = [];
    const c = await consume(
      js,
      r.consumer,
      [r.Task],
      async (_b, ctx) => {
        await new Promise((res) => setTimeout(res, 50));
        completions.push(ctx.deliveryCount);
      },
      { concurrency: 1 },
    );
    await waitFor(() => completions.length === 1, { what: 'redelivered task completed', timeoutMs: 10_000 });
    await waitFor(async () => (await pendingIn(r.stream.name)) === 0, { what: 'acked' });
    await c.stop();
    expect(completions).toEqual([2]);
  });

  it('moves a message the server stopped redelivering (its consumer crashed every time) to the dead-letter stream', async () => {
    const r = await setup({ ackWaitMs: 1000, maxDeliver: 2 });
    const watcher = watchMaxDeliveries(js, nc, jsm, r.consumer);
    await nc.flush();
    await publish(js, r.Task, { id: 'doomed', n: 1 });
    for (const attempt of [1, 2]) {
      const child = startFixtureConsumer(r.stream.name, '{"ackWaitMs":1000,"maxDeliver":2}');
      await waitFor(() => child.out().includes(`started doomed ${attempt}`), { what: `delivery ${attempt}` });
      await child.kill();
    }
    // The server notices max deliveries (and advises) only when some consumer is pulling.
    let calls = 0;
    const survivor = await consume(js, r.consumer, [r.Task], async () => void calls++, { concurrency: 1 });
    const dl = await waitFor(() => deadLetterFor(r.subject), { what: 'max-deliveries dead letter', timeoutMs: 15_000 });
    watcher.unsubscribe();
    await survivor.stop();
    expect(calls).toBe(0);
    expect(dl.header.get(headers.dlqReason)).toBe('not acknowledged after 2 deliveries (handler crashed or timed out)');
    expect(JSON.parse(new TextDecoder().decode(dl.data))).toEqual({ id: 'doomed', n: 1 });
    await waitFor(async () => (await pendingIn(r.stream.name)) === 0, { what: 'removed from work queue' });
  });
});

/** A consumer in its own process that starts every task and never finishes it. */
function startFixtureConsumer(stream: string, overrides: string) {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/consumer-process.ts', import.meta.url))], {
    env: { ...process.env, NATS_URL: inject('natsUrl'), TEST_STREAM: stream, TEST_OVERRIDES: overrides },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d) => {
    out += d;
  });
  return {
    out: () => out,
    async kill() {
      const exited = new Promise((res) => child.once('exit', res));
      child.kill('SIGKILL');
      await exited;
    },
  };
}

describe('termRemoves', () => {
  it('uses term from nats-server 2.10 on, where a terminated message leaves a work queue', () => {
    expect(termRemoves('2.9.10')).toBe(false);
    expect(termRemoves('2.10.0')).toBe(true);
    expect(termRemoves('2.12.1')).toBe(true);
    expect(termRemoves('3.0.0')).toBe(true);
    expect(termRemoves(undefined)).toBe(false);
  });
});
