// A consumer process of the transport bench (spawned by ../transport.ts with an IPC channel):
// consumes one stream at a time through the raw client or lib's typed consume, as the parent
// commands, and reports its running ack count. Diagnostics only on stderr.
import { type JetStreamClient, jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { connectNats, consume } from '@ppc/lib/nats';
import { headers } from '@ppc/proto';
import { benchResources, type Command, type Report } from './shared.ts';

interface Running {
  stop(): Promise<void>;
}

const send = (r: Report) => process.send?.(r);

let total = 0;
let reportPending = false;

/**
 * Counts one ack. Reports are coalesced to one per event-loop turn: a report per message would
 * cost the IPC channel more than the message costs NATS, and a timer would delay the end signal.
 */
function acked(): void {
  total++;
  if (reportPending) return;
  reportPending = true;
  setImmediate(flushReport);
}

function flushReport(): void {
  // Dropped once `stopped` has carried the final count, so no report of a phase trails its end.
  if (!reportPending) return;
  reportPending = false;
  send({ type: 'acked', total });
}

/**
 * The baseline: what a service would write with the client alone (decode the body, ack);
 * `readType` also reads the type header, as any dispatch on a header must.
 */
async function startRaw(js: JetStreamClient, name: string, prefetch: number, readType: boolean): Promise<Running> {
  const { consumer } = benchResources(name);
  const c = await js.consumers.get(consumer.stream, consumer.durable);
  const messages = await c.consume({ max_messages: prefetch });
  const loop = (async () => {
    for await (const m of messages) {
      if (readType) m.headers?.get(headers.type);
      m.json();
      m.ack();
      acked();
    }
  })();
  return {
    async stop() {
      messages.stop();
      await loop;
    },
  };
}

/** lib's path: header dispatch, schema validation, handler context, ack after the handler. */
async function startTyped(js: JetStreamClient, name: string, prefetch: number): Promise<Running> {
  const r = benchResources(name);
  // lib acks right after the handler settles, in the same turn, so the coalesced report follows the ack.
  const c = await consume(js, r.consumer, [r.Task], async () => acked(), { concurrency: prefetch });
  return { stop: () => c.stop(1000) };
}

async function main(): Promise<void> {
  const url = process.argv[2];
  if (!url || !process.send)
    throw new Error('usage: spawned by bench/src/transport.ts with an IPC channel: <nats-url>');
  // Each path on its own terms: lib's connection for typed, the client's defaults for raw.
  const nc = await connectNats({ servers: url, name: `bench-transport-consumer-${process.pid}` });
  const rawNc = await connect({ servers: url, name: `bench-transport-consumer-raw-${process.pid}` });
  const js = jetstream(nc);
  const rawJs = jetstream(rawNc);
  let running: Running | undefined;
  let cpuAtStart = process.cpuUsage();

  const onCommand = async (cmd: Command) => {
    if (cmd.cmd === 'start') {
      await running?.stop();
      total = 0;
      cpuAtStart = process.cpuUsage();
      running =
        cmd.mode === 'typed'
          ? await startTyped(js, cmd.name, cmd.prefetch)
          : await startRaw(rawJs, cmd.name, cmd.prefetch, cmd.mode === 'rawHeaders');
      send({ type: 'started' });
    } else {
      await running?.stop();
      running = undefined;
      reportPending = false;
      const cpu = process.cpuUsage(cpuAtStart);
      send({ type: 'stopped', total, cpuMicros: cpu.user + cpu.system });
    }
  };
  process.on('message', (cmd: Command) => {
    onCommand(cmd).catch((err: Error) => send({ type: 'error', message: err.stack ?? String(err) }));
  });
  // The parent closing the channel (or dying) is the signal to leave: no orphans.
  process.on('disconnect', () => {
    void (async () => {
      await running?.stop().catch(() => {});
      await nc.close().catch(() => {});
      await rawNc.close().catch(() => {});
      process.exit(0);
    })();
  });
  send({ type: 'connected' });
}

main().catch((err: Error) => {
  process.stderr.write(`transport consumer ${process.pid}: ${err.stack ?? err}\n`);
  process.exit(1);
});
