import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from '@ppc/lib/log';
import { subjects } from '@ppc/proto';
import { SharedPayload } from '../graphql/shared-execution.ts';
import { type RunEventView, runEventStream } from './events.ts';

/** Events a run's channel keeps for late subscribers; beyond it, newcomers get a consumer of their own. */
const MAX_BUFFERED = 50_000;
/** Events in one `runUpdated` message at most (a long history is replayed over several). */
export const MAX_BATCH = 500;
/** Batches a channel keeps for subscribers that read from the same position. */
const BATCHES_KEPT = 64;
/**
 * How long waiting subscribers let a burst gather before they wake. Sending a batch costs ~50 µs per subscriber (a
 * WebSocket write each), so a run watched by 1,000 browsers spends ~50 ms per batch: it waits until its events pause
 * for QUIET_MS (at most MAX_LINGER_MS) so that the whole burst goes out as one batch. A run watched by a few wakes at
 * once.
 */
const LINGER_FROM_SUBSCRIBERS = 100;
const QUIET_MS = 2;
const MAX_LINGER_MS = 20;
/** Subscribers woken per turn of the event loop (each then writes its message). */
const WAKE_SLICE = 250;

/**
 * The GraphQL `RunUpdate`: the events of a run a subscriber has not seen yet, in publish order. Subscribers at the
 * same position get the same object, so it is executed and cached once for all of them (`SharedPayload`).
 */
export class RunUpdateBatch extends SharedPayload {
  readonly runId: string;
  readonly events: readonly RunEventView[];
  constructor(runId: string, events: readonly RunEventView[]) {
    super();
    this.runId = runId;
    this.events = events;
  }
}

/** A subscriber's own consumer (the channel overflowed): every event as a batch of one. */
async function* batchesOf(runId: string, events: AsyncIterableIterator<RunEventView>) {
  try {
    for await (const event of events) yield new RunUpdateBatch(runId, [event]);
  } finally {
    await events.return?.();
  }
}

/**
 * One ordered consumer per watched run on this replica, however many browsers watch it: the channel keeps the run's
 * events from the start (stream order) and every subscriber reads that list at its own pace, the history first,
 * then live, each time everything it has not seen yet (up to MAX_BATCH) as one batch. A thousand subscribers of one
 * run cost NATS one consumer instead of a thousand, and one execution per batch (`SharedPayload`). The consumer is
 * deleted when the last subscriber leaves.
 */
export class RunEventHub {
  readonly #nats: { js: JetStreamClient; jsm: JetStreamManager };
  readonly #log: Logger;
  readonly #channels = new Map<string, Channel>();

  constructor(nats: { js: JetStreamClient; jsm: JetStreamManager }, log: Logger) {
    this.#nats = nats;
    this.#log = log;
  }

  /** The run's events from the first, in publish order, then live, in batches; `return()` leaves. */
  async subscribe(runId: string, orgId: string): Promise<AsyncIterableIterator<RunUpdateBatch>> {
    const key = `${orgId}/${runId}`;
    let channel = this.#channels.get(key);
    if (channel?.overflowed) {
      const own = { subject: subjects.runEvents(runId), from: 'all' as const, orgId, log: this.#log };
      return batchesOf(runId, await runEventStream(this.#nats, own));
    }
    if (!channel) {
      channel = new Channel(runId, () => this.#channels.delete(key));
      this.#channels.set(key, channel);
      channel.start(
        runEventStream(this.#nats, { subject: subjects.runEvents(runId), from: 'all', orgId, log: this.#log }),
      );
    }
    return channel.join();
  }
}

class Channel {
  readonly events: RunEventView[] = [];
  overflowed = false;
  readonly #runId: string;
  /** By start position: what subscribers reading from there share. */
  readonly #batches = new Map<number, RunUpdateBatch>();
  #notifyScheduled = false;
  #lastEventAt = 0;
  #source: AsyncIterableIterator<RunEventView> | undefined;
  #failure: unknown;
  #ended = false;
  #members = 0;
  readonly #wake = new Set<() => void>();
  readonly #onEmpty: () => void;
  readonly #ready: Promise<void>;
  #resolveReady!: () => void;

  constructor(runId: string, onEmpty: () => void) {
    this.#runId = runId;
    this.#onEmpty = onEmpty;
    this.#ready = new Promise((r) => {
      this.#resolveReady = r;
    });
  }

  start(source: Promise<AsyncIterableIterator<RunEventView>>): void {
    void (async () => {
      try {
        this.#source = await source;
        this.#resolveReady();
        for await (const event of this.#source) {
          this.events.push(event);
          if (this.events.length >= MAX_BUFFERED) this.overflowed = true;
          this.#scheduleNotify();
        }
      } catch (err) {
        this.#failure = err;
        this.#resolveReady();
      }
      this.#ended = true;
      this.#notify();
    })();
  }

  /**
   * Waiting subscribers wake once per turn of the event loop, or for a widely watched run once its events pause (see
   * QUIET_MS): what arrives meanwhile (a burst, or events that came in while the last batch was being sent) goes out as
   * one batch, one message per subscriber.
   */
  #scheduleNotify(): void {
    const now = performance.now();
    this.#lastEventAt = now;
    if (this.#notifyScheduled) return;
    this.#notifyScheduled = true;
    const wake = () => {
      this.#notifyScheduled = false;
      this.#notify();
    };
    if (this.#members < LINGER_FROM_SUBSCRIBERS) {
      setImmediate(wake);
      return;
    }
    const check = () => {
      const t = performance.now();
      if (t - this.#lastEventAt >= QUIET_MS || t - now >= MAX_LINGER_MS) wake();
      else setTimeout(check, QUIET_MS);
    };
    setTimeout(check, QUIET_MS);
  }

  /** The events from `start` (up to MAX_BATCH), as the object every subscriber at `start` shares. */
  #batchFrom(start: number): RunUpdateBatch {
    const end = Math.min(this.events.length, start + MAX_BATCH);
    const kept = this.#batches.get(start);
    if (kept && kept.events.length === end - start) return kept;
    const batch = new RunUpdateBatch(this.#runId, this.events.slice(start, end));
    this.#batches.delete(start);
    this.#batches.set(start, batch);
    if (this.#batches.size > BATCHES_KEPT) this.#batches.delete(this.#batches.keys().next().value!);
    return batch;
  }

  /** Wakes the waiting subscribers WAKE_SLICE at a time, so that sending to thousands leaves room for other requests. */
  #notify(): void {
    const waiting = [...this.#wake];
    this.#wake.clear();
    const wakeFrom = (start: number) => {
      const end = Math.min(waiting.length, start + WAKE_SLICE);
      for (let i = start; i < end; i++) waiting[i]!();
      if (end < waiting.length) setImmediate(() => wakeFrom(end));
    };
    wakeFrom(0);
  }

  async join(): Promise<AsyncIterableIterator<RunUpdateBatch>> {
    this.#members += 1;
    // Resolve once the consumer exists (as a subscription of its own would), or fail as it would.
    await this.#ready;
    if (this.#failure) {
      this.#leave();
      throw this.#failure;
    }
    let index = 0;
    let left = false;
    // The resolver of a next() waiting for the next event: return() wakes it too, so it ends at once.
    let waiting: (() => void) | undefined;
    const leave = () => {
      if (left) return;
      left = true;
      if (waiting) this.#wake.delete(waiting);
      waiting?.();
      this.#leave();
    };
    const iterator: AsyncIterableIterator<RunUpdateBatch> = {
      next: async () => {
        for (;;) {
          if (left) return { value: undefined, done: true };
          if (index < this.events.length) {
            const batch = this.#batchFrom(index);
            index += batch.events.length;
            return { value: batch, done: false };
          }
          if (this.#ended) {
            leave();
            if (this.#failure) throw this.#failure;
            return { value: undefined, done: true };
          }
          await new Promise<void>((resolve) => {
            waiting = resolve;
            this.#wake.add(resolve);
          });
          waiting = undefined;
        }
      },
      return: async () => {
        leave();
        return { value: undefined, done: true };
      },
      throw: async (err: unknown) => {
        leave();
        throw err;
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  #leave(): void {
    this.#members -= 1;
    if (this.#members > 0) return;
    this.#onEmpty();
    void this.#source?.return?.();
  }
}
