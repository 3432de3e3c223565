/**
 * Run events for subscriptions: an ordered consumer on `EVENTS` (ephemeral, no acks, resets itself on a gap, so
 * every event arrives once and in stream order), mapped to the API's `RunEvent`. The iterator's `return()` (the
 * client unsubscribed, or the connection closed) stops the consumer at once, even while a `next()` is waiting,
 * and deletes it on the server.
 */
import {
  type Consumer,
  type ConsumerMessages,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import type { Logger } from '@ppc/lib/log';
import {
  type BodyOf,
  headers,
  type RunEventKind,
  runEventKinds,
  runEventMessages,
  type RunOutput,
  streams,
} from '@ppc/proto';
import { outputViews, type RunOutputView } from './view.ts';

type AnyRunEvent = BodyOf<(typeof runEventMessages)[number]>;

/** The GraphQL `RunEvent`: one event as published, with the run status it means. */
export interface RunEventView {
  runId: string;
  /** The event's sequence in `EVENTS`: increasing in publish order. */
  seq: number;
  kind: RunEventKind;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  at: Date;
  attempt: number;
  jobId: string | null;
  trigger: string | null;
  worker: string | null;
  region: string | null;
  phase: string | null;
  percent: number | null;
  rows: number | null;
  sheet: { index: number; count: number; name: string } | null;
  message: string | null;
  outputs: RunOutputView[] | null;
  rowCounts: Record<string, number> | null;
  timings: Record<string, number> | null;
  errorCode: string | null;
  errorMessage: string | null;
  retryable: boolean | null;
}

const defByKind = new Map(runEventKinds.map((k, i) => [k, runEventMessages[i]!]));
const decoder = new TextDecoder();

const statusOf = (kind: RunEventKind): RunEventView['status'] =>
  kind === 'queued' ? 'queued' : kind === 'started' || kind === 'progress' ? 'running' : kind;

/** The event in a stored message, or null when it is not a valid run event (logged, skipped). */
export function eventView(m: Pick<JsMsg, 'subject' | 'data' | 'headers' | 'seq'>, log?: Logger): RunEventView | null {
  const kind = m.subject.split('.')[3] as RunEventKind;
  const def = defByKind.get(kind);
  let body: unknown;
  try {
    body = JSON.parse(decoder.decode(m.data));
  } catch {
    body = undefined;
  }
  const type = m.headers?.get(headers.type);
  if (!def || (type && type !== def.type) || !def.check(body)) {
    log?.warn({ subject: m.subject, seq: m.seq }, 'not a valid run event; not sent to subscribers');
    return null;
  }
  const b = body as AnyRunEvent & Record<string, unknown>;
  const str = (k: string) => (typeof b[k] === 'string' ? (b[k] as string) : null);
  const num = (k: string) => (typeof b[k] === 'number' ? (b[k] as number) : null);
  return {
    runId: b.runId,
    seq: m.seq,
    kind,
    status: statusOf(kind),
    at: new Date(b.at),
    attempt: b.attempt,
    jobId: str('jobId'),
    trigger: str('trigger'),
    worker: str('worker'),
    region: str('region'),
    phase: str('phase'),
    percent: num('percent'),
    rows: kind === 'progress' ? num('rows') : null,
    sheet: (b.sheet as RunEventView['sheet']) ?? null,
    message: str('message') ?? str('reason'),
    outputs: Array.isArray(b.outputs) ? outputViews(b.runId, b.outputs as RunOutput[]) : null,
    rowCounts: kind === 'succeeded' ? (b.rows as Record<string, number>) : null,
    timings: (b.timings as Record<string, number>) ?? null,
    errorCode: kind === 'cancelled' ? 'cancelled' : str('code'),
    errorMessage: kind === 'cancelled' ? str('reason') : kind === 'failed' ? str('message') : null,
    retryable: typeof b.retryable === 'boolean' ? b.retryable : null,
  };
}

/** The org id of a run event body, read without validating the rest (runsFeed drops other tenants' first). */
function orgIdOf(data: Uint8Array): string | undefined {
  try {
    const v = (JSON.parse(decoder.decode(data)) as { orgId?: unknown }).orgId;
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

export interface EventStreamOptions {
  /** One filter subject (nats-server 2.9 has no multi-filter consumers). */
  subject: string;
  /** `all`: replay from the first stored event, then live; `new`: only what is published from now on. */
  from: 'all' | 'new';
  /** Only events whose body's `orgId` is this organization reach the subscriber. */
  orgId: string;
  log?: Logger;
}

/**
 * An async iterator of run events; `return()` stops and deletes the consumer. Resolves once the consumer exists,
 * so with `from: 'new'` every event published after the promise resolves is delivered.
 */
export async function runEventStream(
  nats: { js: JetStreamClient; jsm: JetStreamManager },
  opts: EventStreamOptions,
): Promise<AsyncIterableIterator<RunEventView>> {
  // "New" as an explicit start sequence: an ordered consumer that resets before its first delivery restarts from
  // its start sequence, which for DeliverPolicy.New would be the beginning of the stream.
  const start =
    opts.from === 'all'
      ? { deliver_policy: DeliverPolicy.All }
      : {
          deliver_policy: DeliverPolicy.StartSequence,
          opt_start_seq: (await nats.jsm.streams.info(streams.events.name)).state.last_seq + 1,
        };
  const consumer = await nats.js.consumers.get(streams.events.name, { filter_subjects: opts.subject, ...start });
  const messages = await consumer.consume({ max_messages: 256 });
  return new EventIterator(consumer, messages, (m) => {
    if (orgIdOf(m.data) !== opts.orgId) return null;
    return eventView(m, opts.log);
  });
}

class EventIterator<T> implements AsyncIterableIterator<T> {
  readonly #consumer: Consumer;
  readonly #messages: ConsumerMessages;
  readonly #src: AsyncIterator<JsMsg>;
  readonly #map: (m: JsMsg) => T | null;
  #closed = false;

  constructor(consumer: Consumer, messages: ConsumerMessages, map: (m: JsMsg) => T | null) {
    this.#consumer = consumer;
    this.#messages = messages;
    this.#src = messages[Symbol.asyncIterator]();
    this.#map = map;
  }

  async next(): Promise<IteratorResult<T>> {
    while (!this.#closed) {
      const r = await this.#src.next();
      if (r.done) break;
      const v = this.#map(r.value);
      if (v !== null) return { value: v, done: false };
    }
    this.#close();
    return { value: undefined, done: true };
  }

  async return(): Promise<IteratorResult<T>> {
    this.#close();
    return { value: undefined, done: true };
  }

  async throw(err: unknown): Promise<IteratorResult<T>> {
    this.#close();
    throw err;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // stop() ends a waiting next() with done; the ephemeral consumer would otherwise linger for its idle threshold.
    this.#messages.stop();
    this.#consumer.delete().catch(() => {});
  }
}
