// Task-time statistics: the arithmetic, and the compare-and-swap writer against the test nats-server.
import { Kvm } from '@nats-io/kv';
import { InvalidTokenError, type TaskStat } from '@ppc/proto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { connectNats, type NatsConnection } from '../nats/connect.ts';
import { uniqueName } from '../testing/index.ts';
import {
  addSample,
  parseTaskStat,
  poolMeanTaskMs,
  recordTaskTime,
  taskStatKey,
  WEIGHT_HALF_LIFE_MS,
  weightAt,
} from './index.ts';

const HOUR = 60 * 60 * 1000;
const t0 = Date.parse('2026-11-23T12:00:00Z');
const stat = (over: Partial<TaskStat>): TaskStat => ({
  pool: 'report-worker-eu',
  taskType: 'search-terms',
  meanMs: 1000,
  weight: 1,
  samples: 1,
  updatedAt: new Date(t0).toISOString(),
  ...over,
});

describe('task stats arithmetic', () => {
  it('starts at the first sample and moves a fifth of the way towards each new one', () => {
    const first = addSample(null, {
      pool: 'report-worker-eu',
      taskType: 'search-terms',
      durationMs: 1000,
      at: new Date(t0),
    });
    expect(first).toEqual(stat({}));
    const second = addSample(first, {
      pool: 'report-worker-eu',
      taskType: 'search-terms',
      durationMs: 6000,
      at: new Date(t0),
    });
    expect(second.meanMs).toBe(2000);
    expect(second.samples).toBe(2);
    expect(second.weight).toBe(2);
  });

  it('halves a sample’s weight every hour', () => {
    expect(weightAt(stat({ weight: 8 }), t0 + WEIGHT_HALF_LIFE_MS)).toBeCloseTo(4);
    expect(weightAt(stat({ weight: 8 }), t0 + 3 * HOUR)).toBeCloseTo(1);
    const later = addSample(stat({ weight: 8 }), {
      pool: 'report-worker-eu',
      taskType: 'search-terms',
      durationMs: 1000,
      at: new Date(t0 + HOUR),
    });
    expect(later.weight).toBeCloseTo(5);
    expect(later.updatedAt).toBe(new Date(t0 + HOUR).toISOString());
  });

  it('weights each task type of a pool by how much of it the pool ran lately', () => {
    const stats = [
      stat({ taskType: 'fast', meanMs: 1000, weight: 10 }),
      // As many samples, three hours ago: an eighth of the weight.
      stat({ taskType: 'slow', meanMs: 100_000, weight: 10, updatedAt: new Date(t0 - 3 * HOUR).toISOString() }),
      stat({ pool: 'url-checker-eu', taskType: 'urlcheck', meanMs: 999_999, weight: 100 }),
    ];
    expect(poolMeanTaskMs(stats, 'report-worker-eu', t0, 30_000)).toBeCloseTo((10 * 1000 + 1.25 * 100_000) / 11.25, 3);
    expect(poolMeanTaskMs(stats, 'url-checker-eu', t0, 30_000)).toBe(999_999);
    expect(poolMeanTaskMs(stats, 'report-worker-us', t0, 30_000)).toBe(30_000);
    // One type's mean comes back as it is, whatever its weight has decayed to.
    for (const age of [1, 1234, 59_999, 3 * HOUR + 7]) {
      expect(poolMeanTaskMs([stat({ meanMs: 2000 })], 'report-worker-eu', t0 + age, 30_000)).toBe(2000);
    }
  });

  it('reads only values of the stored shape, and keys only from single tokens', () => {
    expect(parseTaskStat(stat({}))).toEqual(stat({}));
    expect(parseTaskStat({ ...stat({}), meanMs: -1 })).toBeNull();
    expect(parseTaskStat({ meanMs: 5 })).toBeNull();
    expect(taskStatKey('url-checker-eu', 'urlcheck')).toBe('url-checker-eu.urlcheck');
    expect(() => taskStatKey('report-worker-eu', 'a.b')).toThrow(InvalidTokenError);
  });
});

describe('recordTaskTime', () => {
  let nc: NatsConnection;
  beforeAll(async () => {
    nc = await connectNats({ servers: inject('natsUrl'), name: 'task-stats-test' });
  });
  afterAll(() => nc.drain());

  it('loses no sample when recorders write the same key at once', async () => {
    const kv = await new Kvm(nc).create(uniqueName('stats'), { history: 1 });
    const sample = { pool: 'report-worker-eu', taskType: 'search-terms', durationMs: 500 };
    await Promise.all(Array.from({ length: 20 }, () => recordTaskTime(kv, sample, 50)));
    const stored = parseTaskStat((await kv.get(taskStatKey(sample.pool, sample.taskType)))!.json());
    expect(stored).toMatchObject({ samples: 20, meanMs: 500 });
    expect(stored!.weight).toBeGreaterThan(19.9);
  });

  it('refuses a duration that is not a finite, non-negative number', async () => {
    const kv = await new Kvm(nc).create(uniqueName('stats'), { history: 1 });
    for (const durationMs of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      await expect(recordTaskTime(kv, { pool: 'report-worker-eu', taskType: 'x', durationMs })).rejects.toThrow(
        /^durationMs: expected a finite number >= 0/,
      );
    }
  });
});
