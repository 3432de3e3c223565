import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from '@ppc/lib/log';
import { subjects } from '@ppc/proto';
import { type RunEventView, runEventStream } from './events.ts';

/** Events a run's channel keeps for late subscribers; beyond it, newcomers get a consumer of their own. */
const MAX_BUFFERED = 50_000;

/**
 * One ordered consumer per watched run on this replica, however many browsers watch it: the channel keeps the run's
 * events from the start (stream order) and every subscriber reads that list at its own pace, the history first,
 * then live. A thousand subscribers of one run cost NATS one consumer instead of a thousand. The consumer is
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

  /** The run's events from the first, in publish order, then live; `return()` leaves. */
  async subscribe(runId: string, orgId: string): Promise<AsyncIterableIterator<RunEventView>> {
    const key = `${orgId}/${runId}`;
    let channel = this.#channels.get(key);
    if (channel?.overflowed) {
      return runEventStream(this.#nats, { subject: subjects.runEvents(runId), from: 'all', orgId, log: this.#log });
    }
    if (!channel) {
      channel = new Channel(() => this.#channels.delete(key));
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
  #source: AsyncIterableIterator<RunEventView> | undefined;
  #failure: unknown;
  #ended = false;
  #members = 0;
  readonly #wake = new Set<() => void>();
  readonly #onEmpty: () => void;
  readonly #ready: Promise<void>;
  #resolveReady!: () => void;

  constructor(onEmpty: () => void) {
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
          this.#notify();
        }
      } catch (err) {
        this.#failure = err;
        this.#resolveReady();
      }
      this.#ended = true;
      this.#notify();
    })();
  }

  #notify(): void {
    const waiting = [...this.#wake];
    this.#wake.clear();
    for (const w of waiting) w();
  }

  async join(): Promise<AsyncIterableIterator<RunEventView>> {
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
    const iterator: AsyncIterableIterator<RunEventView> = {
      next: async () => {
        for (;;) {
          if (left) return { value: undefined, done: true };
          const event = this.events[index];
          if (event) {
            index += 1;
            return { value: event, done: false };
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
