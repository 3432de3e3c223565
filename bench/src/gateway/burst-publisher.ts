// A worker thread that publishes a burst of run progress events from its own event loop, as a report-worker would
// from its own process: the 1,000 subscribers the benchmark keeps in the main thread must not slow the publisher down
// (they would stretch the burst). Posts back each event's publish time on the shared clock (performance.timeOrigin + performance.now()).
import { parentPort, workerData } from 'node:worker_threads';
import { jetstream } from '@nats-io/jetstream';
import { connectNats, publish } from '@ppc/lib/nats';
import { RunProgressMsg } from '@ppc/proto';

export interface BurstOrder {
  natsUrl: string;
  runId: string;
  orgId: string;
  events: number;
}

const order = workerData as BurstOrder;
const nc = await connectNats({ servers: order.natsUrl, name: 'bench-gateway-publisher' });
const js = jetstream(nc);
const now = () => performance.timeOrigin + performance.now();
// Connected and warm: the first publish of the burst should not pay for either.
parentPort!.postMessage({ ready: true });
await new Promise((resolve) => parentPort!.once('message', resolve));
// A burst: every publish issued at once (one connection keeps them in order), the acks awaited together.
const publishedAt: number[] = [];
const acks: Promise<unknown>[] = [];
for (let i = 0; i < order.events; i++) {
  publishedAt.push(now());
  acks.push(
    publish(js, RunProgressMsg, {
      runId: order.runId,
      orgId: order.orgId,
      attempt: 1,
      at: new Date().toISOString(),
      phase: 'fetching',
      percent: i + 1,
      rows: (i + 1) * 100,
    }),
  );
}
await Promise.all(acks);
parentPort!.postMessage({ publishedAt, ackedAt: now() });
await nc.close();
