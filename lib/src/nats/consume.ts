import type { Consumer, ConsumerMessages, JetStreamClient, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import type { MsgHdrs, NatsConnection, Subscription } from '@nats-io/transport-node';
import { type BodyOf, type ConsumerSpec, headers, type MessageDef } from '@ppc/proto';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { isRetryable, PermanentError, RetryableError } from '../errors/index.ts';
import { deadLetter } from './dead-letter.ts';

export interface HandlerContext {
  /** Aborted when the consumer shuts down past its grace period; hand the work back quickly. */
  signal: AbortSignal;
  type: string;
  subject: string;
  streamSeq: number;
  /** 1 on the first delivery. */
  deliveryCount: number;
  isLastAttempt: boolean;
  traceparent: string | undefined;
  headers: MsgHdrs | undefined;
}

export type Handler<D extends MessageDef> = (body: BodyOf<D>, ctx: HandlerContext) => Promise<void>;

export interface ConsumeOptions<D extends MessageDef> {
  /** Most messages handled at once; never more are pulled than there are free slots. */
  concurrency: number;
  log?: Logger;
  metrics?: Registry;
  /**
   * Called before a message is given up on: a PermanentError, or a failure on the last attempt.
   * Where a run records its failure (`failed` event) so nothing fails silently.
   */
  onFailure?: (body: BodyOf<D>, err: unknown, ctx: HandlerContext) => Promise<void>;
  /** How long one pull waits for messages before it is renewed. */
  pullExpiresMs?: number;
  /** Copy messages the server stops redelivering (handler crashed on every attempt) to the DLQ. */
  watchMaxDeliveries?: { nc: NatsConnection; jsm: JetStreamManager };
  /** The server's version (`nc.info.version`); decides how a given-up message is ended. */
  serverVersion?: string;
}

export interface Consumption {
  /** Stops pulling, waits for in-flight handlers up to graceMs, then aborts them and naks what is left. */
  stop(graceMs?: number): Promise<void>;
  inFlight(): number;
}

const decoder = new TextDecoder();

/**
 * Ends a message we have given up on (recorded as failed or dead-lettered) with a term; but
 * nats-server 2.9 (Debian 12's package) keeps terminated messages in a work-queue stream forever,
 * so there an ack stands in for it.
 */
export function termRemoves(serverVersion: string | undefined): boolean {
  const [major = 0, minor = 0] = (serverVersion ?? '').split('.').map(Number);
  return major > 2 || (major === 2 && minor >= 10);
}

/** Wakes every waiter at once; a waiter may give up after a timeout. */
class Notifier {
  #waiters = new Set<() => void>();
  notify(): void {
    // Called once per handled message; the copy is only needed when someone is waiting.
    if (this.#waiters.size === 0) return;
    for (const w of [...this.#waiters]) w();
  }
  wait(timeoutMs?: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = timeoutMs === undefined ? undefined : setTimeout(done, Math.max(1, timeoutMs));
      this.#waiters.add(done);
    });
  }
}

/**
 * A handler's view of its message. The delivery info is parsed out of the reply subject (~3 µs)
 * only if asked for; getters on a class, because getters in an object literal cost about as much.
 */
class MessageContext implements HandlerContext {
  readonly #m: JsMsg;
  readonly #maxDeliver: number;
  readonly signal: AbortSignal;
  readonly type: string;
  constructor(m: JsMsg, type: string, signal: AbortSignal, maxDeliver: number) {
    this.#m = m;
    this.#maxDeliver = maxDeliver;
    this.signal = signal;
    this.type = type;
  }
  get subject(): string {
    return this.#m.subject;
  }
  get streamSeq(): number {
    return this.#m.seq;
  }
  get deliveryCount(): number {
    return this.#m.info.deliveryCount;
  }
  get isLastAttempt(): boolean {
    return this.#m.info.deliveryCount >= this.#maxDeliver;
  }
  get traceparent(): string | undefined {
    return this.#m.headers?.get(headers.traceparent) || undefined;
  }
  get headers(): MsgHdrs | undefined {
    return this.#m.headers;
  }
}

interface Metrics {
  messages: Counter<'consumer' | 'type' | 'outcome'>;
  seconds: Histogram<'consumer' | 'type'>;
  inFlight: Gauge<'consumer'>;
}

function metricsFor(registry: Registry): Metrics {
  const get = <T>(name: string, make: () => T): T => (registry.getSingleMetric(name) as T | undefined) ?? make();
  return {
    messages: get(
      'ppc_messages_total',
      () =>
        new Counter({
          name: 'ppc_messages_total',
          help: 'Messages handled, by consumer, type and outcome (ack, nak, term, dead_letter, handed_back)',
          labelNames: ['consumer', 'type', 'outcome'],
          registers: [registry],
        }),
    ),
    seconds: get(
      'ppc_handler_seconds',
      () =>
        new Histogram({
          name: 'ppc_handler_seconds',
          help: 'Handler duration',
          labelNames: ['consumer', 'type'],
          buckets: [0.005, 0.05, 0.5, 2, 10, 60, 300, 1800],
          registers: [registry],
        }),
    ),
    inFlight: get(
      'ppc_in_flight',
      () =>
        new Gauge({
          name: 'ppc_in_flight',
          help: 'Messages being handled now',
          labelNames: ['consumer'],
          registers: [registry],
        }),
    ),
  };
}

/** The nak delay for a failed attempt: the error's own retry-after, else the consumer's backoff. */
export function retryDelay(spec: ConsumerSpec, deliveryCount: number, err: unknown): number {
  if (err instanceof RetryableError && err.retryAfterMs !== undefined) return err.retryAfterMs;
  const b = spec.backoffMs;
  return b.length === 0 ? 0 : b[Math.min(deliveryCount - 1, b.length - 1)]!;
}

/**
 * Pulls from a durable consumer and runs `handler` for each valid message of one of `defs`.
 * Invalid or unknown messages are dead-lettered and terminated, never retried.
 */
export async function consume<const Defs extends readonly MessageDef[]>(
  js: JetStreamClient,
  spec: ConsumerSpec,
  defs: Defs,
  handler: Handler<Defs[number]>,
  opts: ConsumeOptions<Defs[number]>,
): Promise<Consumption> {
  if (!Number.isInteger(opts.concurrency) || opts.concurrency < 1) {
    throw new RangeError(`concurrency: expected an integer >= 1, got ${opts.concurrency}`);
  }
  const byType = new Map(defs.map((d) => [d.type, d]));
  const log = opts.log?.child({ consumer: spec.durable });
  const metrics = opts.metrics ? metricsFor(opts.metrics) : undefined;
  const consumer: Consumer = await js.consumers.get(spec.stream, spec.durable);
  const workingEveryMs = Math.max(100, Math.floor(spec.ackWaitMs / 3));
  // The client keeps its connection on a field the public interface leaves out.
  const useTerm = termRemoves(opts.serverVersion ?? (js as { nc?: NatsConnection }).nc?.info?.version);
  const settle = (m: JsMsg, reason: string) => (useTerm ? m.term(reason.slice(0, 200)) : m.ack());

  let stopping = false;
  let batch: ConsumerMessages | undefined;
  const running = new Map<JsMsg, { abort: AbortController; handedBack: boolean; extendedAt: number }>();
  const slotFreed = new Notifier();
  const count = (type: string, outcome: string) => metrics?.messages.inc({ consumer: spec.durable, type, outcome });
  const setGauge = () => metrics?.inFlight.set({ consumer: spec.durable }, running.size);

  const dlq = async (m: JsMsg, reason: string, field?: string) => {
    await deadLetter(js, m, {
      reason,
      field,
      stream: spec.stream,
      consumer: spec.durable,
      streamSeq: m.seq,
      deliveries: m.info.deliveryCount,
    });
    settle(m, reason);
  };

  async function handle(m: JsMsg): Promise<void> {
    const type = m.headers?.get(headers.type) ?? '';
    const def = byType.get(type);
    if (!def) {
      log?.warn({ subject: m.subject, type, seq: m.seq }, 'unknown message type, dead-lettered');
      count(type || 'none', 'dead_letter');
      return dlq(m, type ? `unknown message type ${type}` : `missing ${headers.type} header`);
    }
    let body: unknown;
    try {
      body = JSON.parse(decoder.decode(m.data));
    } catch (err) {
      count(type, 'dead_letter');
      return dlq(m, `body is not JSON: ${(err as Error).message}`);
    }
    try {
      const d: MessageDef = def;
      d.assert(body);
    } catch (err) {
      const v = err as { field?: string; message: string };
      log?.warn({ subject: m.subject, type, seq: m.seq, err: v.message }, 'invalid message, dead-lettered');
      count(type, 'dead_letter');
      return dlq(m, v.message, v.field);
    }

    const started = performance.now();
    const state = { abort: new AbortController(), handedBack: false, extendedAt: started };
    running.set(m, state);
    setGauge();
    const ctx = new MessageContext(m, type, state.abort.signal, spec.maxDeliver);
    try {
      await handler(body as BodyOf<Defs[number]>, ctx);
      if (state.handedBack) return;
      m.ack();
      count(type, 'ack');
    } catch (err) {
      if (state.handedBack) return;
      if (state.abort.signal.aborted) {
        m.nak();
        count(type, 'handed_back');
        return;
      }
      const permanent = !isRetryable(err);
      if (permanent || ctx.isLastAttempt) {
        log?.warn({ type, seq: m.seq, err, deliveries: ctx.deliveryCount }, 'giving up on message');
        try {
          await opts.onFailure?.(body as BodyOf<Defs[number]>, err, ctx);
        } catch (hookErr) {
          // The failure could not be recorded: try again later rather than lose it.
          log?.error({ type, seq: m.seq, err: hookErr }, 'failure hook failed, message will be redelivered');
          m.nak(retryDelay(spec, ctx.deliveryCount, hookErr));
          count(type, 'nak');
          return;
        }
        if (permanent) {
          settle(m, String((err as Error)?.message ?? err));
          count(type, 'term');
        } else {
          await dlq(m, `failed on last attempt ${ctx.deliveryCount}/${spec.maxDeliver}: ${(err as Error).message}`);
          count(type, 'dead_letter');
        }
        return;
      }
      const delay = retryDelay(spec, ctx.deliveryCount, err);
      log?.info({ type, seq: m.seq, err: (err as Error).message, delayMs: delay }, 'retrying message later');
      m.nak(delay);
      count(type, 'nak');
    } finally {
      metrics?.seconds.observe({ consumer: spec.durable, type }, (performance.now() - started) / 1000);
      running.delete(m);
      setGauge();
      slotFreed.notify();
    }
  }

  // One timer for everything in flight, not one per message (~1.5 µs a message to arm and clear).
  // Ticking twice a period, each message still hears working() at least every ackWait/2.
  const ticker = setInterval(() => {
    const now = performance.now();
    for (const [m, state] of running) {
      if (now - state.extendedAt < workingEveryMs) continue;
      m.working();
      state.extendedAt = now;
    }
  }, workingEveryMs / 2);
  ticker.unref();

  const loop = (async () => {
    while (!stopping) {
      const free = opts.concurrency - running.size;
      if (free <= 0) {
        await slotFreed.wait();
        continue;
      }
      try {
        batch = await consumer.fetch({ max_messages: free, expires: opts.pullExpiresMs ?? 5000 });
        for await (const m of batch) {
          if (stopping) {
            m.nak();
            continue;
          }
          void handle(m).catch((err) => log?.error({ err, seq: m.seq }, 'message handling failed'));
        }
      } catch (err) {
        if (stopping) break;
        log?.warn({ err: (err as Error).message }, 'pull failed, retrying');
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  })();

  let advisories: Subscription | undefined;
  if (opts.watchMaxDeliveries) {
    advisories = watchMaxDeliveries(js, opts.watchMaxDeliveries.nc, opts.watchMaxDeliveries.jsm, spec, log);
  }

  return {
    inFlight: () => running.size,
    async stop(graceMs = 10_000) {
      stopping = true;
      batch?.stop();
      slotFreed.notify();
      advisories?.unsubscribe();
      const deadline = Date.now() + graceMs;
      // Handlers finishing in the grace period keep their messages alive until then.
      while (running.size > 0 && Date.now() < deadline) await slotFreed.wait(deadline - Date.now());
      clearInterval(ticker);
      for (const [m, state] of running) {
        state.handedBack = true;
        state.abort.abort(new RetryableError('consumer shutting down'));
        m.nak();
        count(m.headers?.get(headers.type) ?? '', 'handed_back');
      }
      running.clear();
      setGauge();
      await loop;
    },
  };
}

/**
 * A message whose handler crashed on every attempt is no longer delivered but stays in the work
 * queue; the server's MAX_DELIVERIES advisory tells us, and we move it to the dead-letter stream.
 */
export function watchMaxDeliveries(
  js: JetStreamClient,
  nc: NatsConnection,
  jsm: JetStreamManager,
  spec: ConsumerSpec,
  log?: Logger,
): Subscription {
  const subject = `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${spec.stream}.${spec.durable}`;
  return nc.subscribe(subject, {
    callback: (_err, msg) => {
      void (async () => {
        const adv = msg.json<{ stream_seq: number; deliveries: number }>();
        const stored = await jsm.streams.getMessage(spec.stream, { seq: adv.stream_seq }).catch(() => null);
        if (!stored) return;
        await deadLetter(
          js,
          { subject: stored.subject, data: stored.data, headers: stored.header },
          {
            reason: `not acknowledged after ${adv.deliveries} deliveries (handler crashed or timed out)`,
            stream: spec.stream,
            consumer: spec.durable,
            streamSeq: adv.stream_seq,
            deliveries: adv.deliveries,
          },
        );
        await jsm.streams.deleteMessage(spec.stream, adv.stream_seq).catch(() => false);
        log?.warn({ seq: adv.stream_seq }, 'max deliveries reached, dead-lettered');
      })().catch((err) => log?.error({ err }, 'could not dead-letter a max-delivered message'));
    },
  });
}

export { PermanentError, RetryableError };
