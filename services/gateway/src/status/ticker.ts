import { setTimeout as sleep } from 'node:timers/promises';

/**
 * An async iterator that yields `produce()` at once and then every `intervalMs`. `return()` (the client
 * unsubscribed) ends it immediately, also while it is waiting for the next tick.
 */
export function ticker<T>(intervalMs: number, produce: () => Promise<T>): AsyncIterableIterator<T> {
  const stop = new AbortController();
  let first = true;
  const done = (): IteratorResult<T> => ({ value: undefined, done: true });
  return {
    async next() {
      if (stop.signal.aborted) return done();
      if (!first) {
        try {
          await sleep(intervalMs, undefined, { signal: stop.signal });
        } catch {
          return done();
        }
      }
      first = false;
      const value = await produce();
      return stop.signal.aborted ? done() : { value, done: false };
    },
    async return() {
      stop.abort();
      return done();
    },
    async throw(err: unknown) {
      stop.abort();
      throw err;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
