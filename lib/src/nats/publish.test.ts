// Integration tests against real nats-servers: the harness's shared one, and a private one this
// file restarts mid-publish.
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { headers, MessageValidationError } from '@ppc/proto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { privateNatsServer, uniqueName, waitFor } from '../testing/index.ts';
import { connectNats } from './connect.ts';
import { testResources } from './fixtures/test-messages.ts';
import { provision } from './provision.ts';
import { publish } from './publish.ts';

let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
beforeAll(async () => {
  nc = await connectNats({ servers: inject('natsUrl'), name: 'publish-test' });
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
});
afterAll(() => nc.drain());

async function setup() {
  const r = testResources(uniqueName('pub'));
  await provision(nc, jsm, { streams: [r.stream], consumers: [r.consumer] });
  return r;
}

describe('publish', () => {
  it('refuses an invalid body before anything is sent, naming the field', async () => {
    const r = await setup();
    const err = await publish(js, r.Task, { id: '', n: 1 }).catch((e) => e);
    expect(err).toBeInstanceOf(MessageValidationError);
    expect(err.field).toBe('/id');
    expect((await jsm.streams.info(r.stream.name)).state.messages).toBe(0);
  });

  it('sets the type, message id and a W3C traceparent, and awaits the stream ack', async () => {
    const r = await setup();
    const ack = await publish(js, r.Task, { id: 'a1', n: 1 });
    expect(ack.stream).toBe(r.stream.name);
    const stored = (await jsm.streams.getMessage(r.stream.name, { seq: ack.seq }))!;
    expect(stored.header.get(headers.type)).toBe('test.task.v1');
    expect(stored.header.get(headers.msgId)).toBe('task.a1');
    expect(stored.header.get(headers.traceparent)).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  it('keeps the trace id of the message that caused it', async () => {
    const r = await setup();
    const parent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const ack = await publish(js, r.Task, { id: 't1', n: 1 }, { traceparent: parent });
    const stored = (await jsm.streams.getMessage(r.stream.name, { seq: ack.seq }))!;
    const tp = stored.header.get(headers.traceparent);
    expect(tp.split('-')[1]).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(tp.split('-')[2]).not.toBe('b7ad6b7169203331');
  });

  it('stores a message published twice with the same id once', async () => {
    const r = await setup();
    const a = await publish(js, r.Task, { id: 'same', n: 1 });
    const b = await publish(js, r.Task, { id: 'same', n: 1 });
    expect(b.duplicate).toBe(true);
    expect(b.seq).toBe(a.seq);
    expect((await jsm.streams.info(r.stream.name)).state.messages).toBe(1);
  });

  it('loses no acknowledged message when nats-server restarts during publishing', async () => {
    await using server = await privateNatsServer();
    const pnc = await connectNats({ servers: server.url, name: 'restart-test' });
    const pjs = jetstream(pnc);
    const pjsm = await jetstreamManager(pnc);
    const r = testResources(uniqueName('restart'));
    await provision(pnc, pjsm, { streams: [r.stream] });

    const acked = new Set<string>();
    let publishing = true;
    const publisher = (async () => {
      for (let i = 0; publishing; i++) {
        try {
          await publish(pjs, r.Task, { id: `m${i}`, n: i }, { timeoutMs: 1000, retries: 1 });
          acked.add(`task.m${i}`);
        } catch {
          // Not acknowledged: the caller is told it may not be stored, so it is not counted.
        }
      }
    })();
    await waitFor(() => acked.size >= 200, { what: '200 acks before the restart' });
    await server.restart();
    const afterRestart = acked.size;
    await waitFor(() => acked.size >= afterRestart + 200, { what: '200 acks after the restart', timeoutMs: 20_000 });
    publishing = false;
    await publisher;

    const stored = new Set<string>();
    const info = await pjsm.streams.info(r.stream.name);
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await pjsm.streams.getMessage(r.stream.name, { seq }).catch(() => null);
      if (m) stored.add(m.header.get(headers.msgId));
    }
    const lost = [...acked].filter((id) => !stored.has(id));
    expect(lost).toEqual([]);
    // Every stored message has its own id: retries inside the duplicate window stored nothing twice.
    expect(stored.size).toBe(info.state.messages);
    await pnc.close();
  });
});
