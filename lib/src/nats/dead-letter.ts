import type { JetStreamClient, JetStreamManager, PubAck } from '@nats-io/jetstream';
import { headers as natsHeaders, type MsgHdrs } from '@nats-io/transport-node';
import { headers, streams, subjects } from '@ppc/proto';
import { childTraceparent } from './trace.ts';

export interface DeadLetterReason {
  reason: string;
  field?: string;
  stream: string;
  consumer: string;
  streamSeq: number;
  deliveries: number;
}

/**
 * Copies a message to `dlq.<subject>` with the reason in headers. The msg id is derived from the
 * source stream and sequence, so replicas that both notice the same failure store it once.
 */
export function deadLetter(
  js: JetStreamClient,
  original: { subject: string; data: Uint8Array; headers?: MsgHdrs },
  why: DeadLetterReason,
): Promise<PubAck> {
  const h = natsHeaders();
  const type = original.headers?.get(headers.type);
  if (type) h.set(headers.type, type);
  h.set(headers.traceparent, childTraceparent(original.headers?.get(headers.traceparent)));
  h.set(headers.dlqReason, why.reason.slice(0, 1000));
  if (why.field) h.set(headers.dlqField, why.field);
  h.set(headers.dlqStream, why.stream);
  h.set(headers.dlqConsumer, why.consumer);
  h.set(headers.dlqSeq, String(why.streamSeq));
  h.set(headers.dlqDeliveries, String(why.deliveries));
  h.set(headers.dlqSubject, original.subject);
  const msgID = `dlq.${why.stream}.${why.streamSeq}`;
  h.set(headers.msgId, msgID);
  return js.publish(subjects.deadLetter(original.subject), original.data, { headers: h, msgID });
}

export class DeadLetterNotFoundError extends Error {
  override name = 'DeadLetterNotFoundError';
  readonly seq: number;
  constructor(seq: number) {
    super(`no dead letter with sequence ${seq}`);
    this.seq = seq;
  }
}

/**
 * Publishes a dead letter back to the subject it came from, with its original type and a new
 * msg id, and removes it from the dead-letter stream.
 */
export async function replayDeadLetter(js: JetStreamClient, jsm: JetStreamManager, seq: number): Promise<PubAck> {
  const stored = await jsm.streams.getMessage(streams.deadLetters.name, { seq }).catch(() => null);
  if (!stored) throw new DeadLetterNotFoundError(seq);
  const subject = stored.header?.get(headers.dlqSubject) || subjects.originalOfDeadLetter(stored.subject);
  const h = natsHeaders();
  const type = stored.header?.get(headers.type);
  if (type) h.set(headers.type, type);
  h.set(headers.traceparent, childTraceparent(stored.header?.get(headers.traceparent)));
  const msgID = `replay.${streams.deadLetters.name}.${seq}`;
  h.set(headers.msgId, msgID);
  const ack = await js.publish(subject, stored.data, { headers: h, msgID });
  await jsm.streams.deleteMessage(streams.deadLetters.name, seq);
  return ack;
}

export interface DeadLetterSummary {
  seq: number;
  subject: string;
  type: string | undefined;
  reason: string;
  field: string | undefined;
  deliveries: number;
  at: Date;
}

/** The oldest dead letters first, up to `limit`, for an operator to inspect before replaying. */
export async function listDeadLetters(
  jsm: JetStreamManager,
  opts: { limit?: number } = {},
): Promise<DeadLetterSummary[]> {
  const info = await jsm.streams.info(streams.deadLetters.name);
  const out: DeadLetterSummary[] = [];
  const limit = opts.limit ?? 100;
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && out.length < limit; seq++) {
    const m = await jsm.streams.getMessage(streams.deadLetters.name, { seq }).catch(() => null);
    if (!m) continue; // replayed (deleted) sequences leave gaps
    out.push({
      seq,
      subject: m.header?.get(headers.dlqSubject) || subjects.originalOfDeadLetter(m.subject),
      type: m.header?.get(headers.type) || undefined,
      reason: m.header?.get(headers.dlqReason) ?? '',
      field: m.header?.get(headers.dlqField) || undefined,
      deliveries: Number(m.header?.get(headers.dlqDeliveries) || 0),
      at: m.time,
    });
  }
  return out;
}
