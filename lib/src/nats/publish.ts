import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import { headers as natsHeaders, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { type BodyOf, headers, type MessageDef } from '@ppc/proto';
import { childTraceparent } from './trace.ts';

export interface PublishOptions {
  /** Overrides the message type's own idempotency key. */
  msgId?: string;
  /** Traceparent of the message that caused this one. */
  traceparent?: string;
  /** Milliseconds to wait for the stream's publish ack. */
  timeoutMs?: number;
  /** Retries of a publish that got no ack (same msg id, so the stream stores it once). */
  retries?: number;
}

const encoder = new TextEncoder();

export function messageHeaders(type: string, msgId: string | undefined, traceparent?: string): MsgHdrs {
  const h = natsHeaders();
  h.set(headers.type, type);
  h.set(headers.traceparent, childTraceparent(traceparent));
  if (msgId) h.set(headers.msgId, msgId);
  return h;
}

/**
 * Validates the body against its type, sets `Ppc-Type`, `Nats-Msg-Id` and `traceparent`, publishes
 * to the type's subject and waits for the stream's ack. Throws MessageValidationError before
 * anything is sent when the body is invalid.
 */
export async function publish<D extends MessageDef>(
  js: JetStreamClient,
  def: D,
  body: BodyOf<D>,
  opts: PublishOptions = {},
): Promise<PubAck> {
  def.assert(body);
  const msgId = opts.msgId ?? def.msgId?.(body);
  const payload = encoder.encode(JSON.stringify(body));
  const subject = def.subject(body);
  const hdrs = messageHeaders(def.type, msgId, opts.traceparent);
  const attempts = 1 + (opts.retries ?? 2);
  let lastErr: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      return await js.publish(subject, payload, {
        headers: hdrs,
        ...(msgId ? { msgID: msgId } : {}),
        timeout: opts.timeoutMs ?? 5000,
      });
    } catch (err) {
      lastErr = err;
      // Without a msg id a retry could store the message twice; the caller decides.
      if (!msgId) break;
      await new Promise((r) => setTimeout(r, 100 * 2 ** i));
    }
  }
  throw lastErr;
}

/** Core NATS (not stored): commands such as cancel, validated the same way. */
export function publishCore<D extends MessageDef>(
  nc: NatsConnection,
  def: D,
  body: BodyOf<D>,
  traceparent?: string,
): void {
  def.assert(body);
  nc.publish(def.subject(body), encoder.encode(JSON.stringify(body)), {
    headers: messageHeaders(def.type, undefined, traceparent),
  });
}
