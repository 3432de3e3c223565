import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { streams, subjects } from '@ppc/proto';

const decoder = new TextDecoder();

/** Every event of a run on `EVENTS`, in stream order, as `[kind, body]` (an ordered consumer over its subjects). */
export async function runEventsOf(nc: NatsConnection, runId: string): Promise<[string, Record<string, unknown>][]> {
  // One filter subject as a string: nats-server 2.9 has no multi-filter consumers.
  const c = await jetstream(nc).consumers.get(streams.events.name, { filter_subjects: subjects.runEvents(runId) });
  const out: [string, Record<string, unknown>][] = [];
  const pending = (await c.info(true)).num_pending;
  if (pending === 0) return out;
  for await (const m of await c.fetch({ max_messages: pending, expires: 2000 })) {
    out.push([m.subject.split('.').pop()!, JSON.parse(decoder.decode(m.data))]);
    if (m.info.pending === 0) break;
  }
  return out;
}
