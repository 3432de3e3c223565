// Integration tests against the real nats-server started by the test harness.
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { headers, streams } from '@ppc/proto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { uniqueName, waitFor } from '../testing/index.ts';
import { connectNats } from './connect.ts';
import { consume } from './consume.ts';
import { DeadLetterNotFoundError, listDeadLetters, replayDeadLetter } from './dead-letter.ts';
import { testResources } from './fixtures/test-messages.ts';
import { ensureStream, provision } from './provision.ts';

let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
beforeAll(async () => {
  nc = await connectNats({ servers: inject('natsUrl'), name: 'dlq-test' });
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
  await ensureStream(jsm, streams.deadLetters);
});
afterAll(() => nc.drain());

describe('replayDeadLetter', () => {
  it('puts a dead letter back on its original subject with its type, and removes it from the DLQ', async () => {
    const r = testResources(uniqueName('dl'));
    await provision(nc, jsm, { streams: [r.stream], consumers: [r.consumer] });
    // A consumer that did not know the type yet dead-letters it …
    const old = await consume(js, r.consumer, [], async () => {}, { concurrency: 1 });
    const h = natsHeaders();
    h.set(headers.type, r.Task.type);
    await js.publish(r.subject, JSON.stringify({ id: 'late', n: 3 }), { headers: h });
    const dl = await waitFor(
      () => jsm.streams.getMessage(streams.deadLetters.name, { last_by_subj: `dlq.${r.subject}` }).catch(() => null),
      { what: 'dead letter' },
    );
    await old.stop();
    const listed = (await listDeadLetters(jsm, { limit: 10_000 })).find((d) => d.seq === dl.seq);
    expect(listed).toMatchObject({
      subject: r.subject,
      type: r.Task.type,
      reason: `unknown message type ${r.Task.type}`,
    });
    // … and after the fix the operator replays it to a consumer that does.
    const seen: number[] = [];
    const fixed = await consume(js, r.consumer, [r.Task], async (b) => void seen.push(b.n), { concurrency: 1 });
    await replayDeadLetter(js, jsm, dl.seq);
    await waitFor(() => seen.length === 1, { what: 'replayed message handled' });
    await fixed.stop();
    expect(seen).toEqual([3]);
    expect(await jsm.streams.getMessage(streams.deadLetters.name, { seq: dl.seq }).catch(() => null)).toBeNull();
    await expect(replayDeadLetter(js, jsm, dl.seq)).rejects.toBeInstanceOf(DeadLetterNotFoundError);
  });
});
