import type { JetStreamClient, PubAck } from '@nats-io/jetstream';
import { LockMode } from '@mikro-orm/core';
import type { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { BodyOf, MessageDef } from '@ppc/proto';
import { messageHeaders } from '../nats/publish.ts';
import { OutboxMessage } from './entities.ts';

/**
 * Transactional outbox. A task message is written as a row in the same transaction as the run it belongs
 * to (`addToOutbox` inside `em.transactional`); the relay publishes unsent rows with their deterministic
 * `Nats-Msg-Id` and marks them sent.
 *
 * Crash safety: the relay claims a bounded batch with `FOR UPDATE SKIP LOCKED`, publishes, marks and
 * commits. Killed before publishing, the rows stay unsent and unlocked, and the next relay publishes
 * them. Killed after publishing but before the commit, the rows are published again with the same msg
 * id, and the stream's duplicate window drops the copy. While one relay holds a batch, others skip it,
 * so two live relays never publish the same row.
 */

const encoder = new TextEncoder();

export interface OutboxScope {
  organizationId: string;
  /** The run the message belongs to (task messages). */
  runId?: string;
  traceparent?: string;
}

/**
 * Validates `body` against its message type and stages the row in `em` (flushed with the caller's
 * transaction). Throws MessageValidationError before anything is written when the body is invalid.
 */
export function addToOutbox<D extends MessageDef>(
  em: EntityManager,
  def: D,
  body: BodyOf<D>,
  scope: OutboxScope,
): OutboxMessage {
  def.assert(body);
  const msgId = def.msgId?.(body);
  if (!msgId) throw new Error(`${def.type} has no idempotency key; the outbox needs a deterministic Nats-Msg-Id`);
  return em.create(OutboxMessage, {
    organization: scope.organizationId,
    run: scope.runId ?? null,
    type: def.type,
    subject: def.subject(body),
    msgId,
    body: body as Record<string, unknown>,
    traceparent: scope.traceparent ?? null,
  });
}

export interface RelayHooks {
  /** Fault-injection points for crash tests: called with each claimed row around its publish. */
  beforePublish?(row: OutboxMessage): Promise<void> | void;
  afterPublish?(row: OutboxMessage, ack: PubAck): Promise<void> | void;
}

export interface RelayOptions {
  /** Rows claimed per transaction. Default 100. */
  batchSize?: number;
  /** Publish-ack timeout per message. Default 5000 ms. */
  publishTimeoutMs?: number;
  hooks?: RelayHooks;
}

export interface BatchResult {
  /** Rows claimed by this batch. */
  claimed: number;
  /** Rows published and marked sent. */
  sent: number;
  /** Of those, how many the stream reported as duplicates (already published by an earlier, crashed try). */
  duplicates: number;
  /** The first publish failure, which ends the batch (later rows keep their order for the next try). */
  error?: Error;
}

/** Claims up to `batchSize` unsent rows (oldest first, skipping rows another relay holds), publishes and marks them. */
export async function relayOutboxBatch(
  orm: MikroORM,
  js: JetStreamClient,
  opts: RelayOptions = {},
): Promise<BatchResult> {
  const result: BatchResult = { claimed: 0, sent: 0, duplicates: 0 };
  await orm.em.fork().transactional(async (em) => {
    const rows = await em.find(
      OutboxMessage,
      { sentAt: null },
      { orderBy: { id: 'asc' }, limit: opts.batchSize ?? 100, lockMode: LockMode.PESSIMISTIC_PARTIAL_WRITE },
    );
    result.claimed = rows.length;
    for (const row of rows) {
      await opts.hooks?.beforePublish?.(row);
      let ack: PubAck;
      try {
        ack = await js.publish(row.subject, encoder.encode(JSON.stringify(row.body)), {
          headers: messageHeaders(row.type, row.msgId, row.traceparent ?? undefined),
          msgID: row.msgId,
          timeout: opts.publishTimeoutMs ?? 5000,
        });
      } catch (err) {
        row.attempts += 1;
        row.lastError = (err as Error).message.slice(0, 1000);
        result.error = err as Error;
        break;
      }
      await opts.hooks?.afterPublish?.(row, ack);
      row.sentAt = new Date();
      row.attempts += 1;
      row.lastError = null;
      result.sent += 1;
      if (ack.duplicate) result.duplicates += 1;
    }
  });
  return result;
}

export interface OutboxRelay {
  /** Wakes the relay now (after a transaction that wrote outbox rows in this process). */
  kick(): void;
  /** Stops after the batch in flight; resolves when it has committed. */
  stop(): Promise<void>;
  readonly stats: { sent: number; duplicates: number; errors: number };
}

export interface StartRelayOptions extends RelayOptions {
  /** Poll interval when idle. Default 250 ms. */
  pollIntervalMs?: number;
  /** Wait after a failed batch before trying again. Default 1000 ms. */
  errorBackoffMs?: number;
  onError?(err: Error): void;
}

/** Runs `relayOutboxBatch` in a loop: back to back while batches come back full, polling when idle. */
export function startOutboxRelay(orm: MikroORM, js: JetStreamClient, opts: StartRelayOptions = {}): OutboxRelay {
  const stats = { sent: 0, duplicates: 0, errors: 0 };
  const batchSize = opts.batchSize ?? 100;
  let stopping = false;
  let wake: (() => void) | undefined;
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        wake = undefined;
        resolve();
      }
      wake = done;
    });
  const loop = (async () => {
    while (!stopping) {
      let res: BatchResult;
      try {
        res = await relayOutboxBatch(orm, js, opts);
      } catch (err) {
        res = { claimed: 0, sent: 0, duplicates: 0, error: err as Error };
      }
      stats.sent += res.sent;
      stats.duplicates += res.duplicates;
      if (res.error) {
        stats.errors += 1;
        opts.onError?.(res.error);
        if (!stopping) await pause(opts.errorBackoffMs ?? 1000);
      } else if (res.claimed < batchSize && !stopping) {
        await pause(opts.pollIntervalMs ?? 250);
      }
    }
  })();
  return {
    stats,
    kick: () => wake?.(),
    async stop() {
      stopping = true;
      wake?.();
      await loop;
    },
  };
}
