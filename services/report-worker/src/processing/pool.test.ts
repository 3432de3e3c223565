// The processing pool on real piscina threads: the real report thread, and a fixture thread (fixtures/test-thread.ts)
// that throws, spins, exits or exhausts its heap on request.
import { columnFor } from '@ppc/lib/ads';
import { PermanentError, RetryableError } from '@ppc/lib/errors';
import { waitFor } from '@ppc/lib/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { packRows, REPORT_COLUMN_MISSING } from '../reports/index.ts';
import { THREAD_FAILED, THREAD_OUT_OF_MEMORY } from './boundary.ts';
import type { FixtureTask } from './fixtures/test-thread.ts';
import { ReportPool } from './pool.ts';

const fixture = new URL('./fixtures/test-thread.ts', import.meta.url);
const pools: ReportPool[] = [];
const open = (opts: ConstructorParameters<typeof ReportPool>[0]) => {
  const pool = new ReportPool(opts);
  pools.push(pool);
  return pool;
};

afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
});

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

describe('report pool', () => {
  it('runs a report’s map in a thread, whose typed error names the missing column', async () => {
    const pool = open({ threads: 1 });
    const batch = packRows(['search_term_view.search_term', 'metrics.clicks'].map(columnFor), [
      ['a b', 1],
      ['b', 2],
    ]);
    // keyword-health's metrics query reads ad group and criterion ids: this batch has neither.
    const err = await rejection(pool.map('keyword-health', 'metrics', {}, batch));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({ code: REPORT_COLUMN_MISSING });
    expect((err as Error).message).toMatch(/no text column "ad_group.id"/);
  });

  it('rebuilds typed errors thrown in a thread as their class, with code and retry delay', async () => {
    const pool = open({ threads: 1, filename: fixture });
    const task = (what: 'retryable' | 'permanent' | 'plain'): FixtureTask => ({ kind: 'throw', what });
    const retryable = await rejection(pool.run(task('retryable')));
    expect(retryable).toBeInstanceOf(RetryableError);
    expect(retryable).toMatchObject({ code: 'ADS_RATE_LIMITED', retryAfterMs: 1500, retryable: true });
    expect((retryable as Error).message).toBe('the platform asked to slow down');
    const permanent = await rejection(pool.run(task('permanent')));
    expect(permanent).toBeInstanceOf(PermanentError);
    expect(permanent).toMatchObject({ code: 'ADS_AUTH', retryable: false });
    // An untyped error is a bug: retried, since a fix may be deployed meanwhile.
    const plain = await rejection(pool.run(task('plain')));
    expect(plain).toBeInstanceOf(RetryableError);
    expect(plain).toMatchObject({ code: 'INTERNAL', message: 'cannot read properties of undefined' });
    expect(await pool.run({ kind: 'echo', value: 42 } satisfies FixtureTask)).toBe(42);
  });

  it('turns a thread that dies into a retryable error and replaces it', async () => {
    const pool = open({ threads: 1, filename: fixture });
    const err = await rejection(pool.run({ kind: 'exit' } satisfies FixtureTask));
    expect(err).toBeInstanceOf(RetryableError);
    expect(err).toMatchObject({ code: THREAD_FAILED });
    expect(await pool.run({ kind: 'echo', value: 'still here' } satisfies FixtureTask)).toBe('still here');
  });

  it('fails permanently when a thread exhausts its heap', async () => {
    const pool = open({ threads: 1, filename: fixture, maxThreadHeapMb: 32 });
    const err = await rejection(pool.run({ kind: 'hog' } satisfies FixtureTask));
    expect(err).toBeInstanceOf(PermanentError);
    expect(err).toMatchObject({ code: THREAD_OUT_OF_MEMORY });
  });

  it('stops a running computation when its signal aborts, and keeps serving', async () => {
    const pool = open({ threads: 1, filename: fixture });
    const counter = new SharedArrayBuffer(4);
    const spins = new Int32Array(counter);
    const cancel = new AbortController();
    const running = rejection(pool.run({ kind: 'spin', counter } satisfies FixtureTask, { signal: cancel.signal }));
    await waitFor(() => Atomics.load(spins, 0) > 0, { what: 'the thread to start spinning' });
    const reason = new Error('cancelled by the user');
    const abortedAt = performance.now();
    cancel.abort(reason);
    expect(await running).toBe(reason);
    expect(performance.now() - abortedAt).toBeLessThan(2000);
    // The spinning thread is terminated: its counter stops moving (it never would on its own).
    await waitFor(
      async () => {
        const before = Atomics.load(spins, 0);
        await pool.run({ kind: 'echo', value: null } satisfies FixtureTask);
        return Atomics.load(spins, 0) === before;
      },
      { timeoutMs: 2000, what: 'the cancelled thread to stop' },
    );
    expect(await pool.run({ kind: 'echo', value: 'next' } satisfies FixtureTask)).toBe('next');
  });

  it('loads the thread module in every thread when warmed', async () => {
    const pool = open({ threads: 2 });
    await pool.warm();
    expect(pool.stats()).toMatchObject({ threads: 2, completed: 2, queued: 0 });
  });

  it('refuses a thread count it cannot honour', () => {
    expect(() => new ReportPool({ threads: 0 })).toThrow(RangeError);
    expect(() => new ReportPool({ threads: 1.5 })).toThrow(/threads must be an integer/);
  });
});
