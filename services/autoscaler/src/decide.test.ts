import { describe, expect, it } from 'vitest';
import { type DecisionInputs, decide, type PoolPolicy } from './decide.ts';

const policy: PoolPolicy = { min: 0, max: 8, targetDrainMs: 60_000, cooldownMs: 30_000 };
const NOW = Date.parse('2026-11-23T12:00:00Z');
const base: DecisionInputs = {
  backlog: 0,
  live: 0,
  starting: 0,
  meanTaskMs: 10_000,
  lastStartAt: null,
  now: NOW,
  policy,
};

describe('decide', () => {
  // [situation, inputs, wanted, toStart]
  type Situation = Partial<Omit<DecisionInputs, 'policy'>> & { policy?: Partial<PoolPolicy> };
  const table: Array<[string, Situation, number, number]> = [
    ['an idle pool with nothing to do starts nothing', {}, 0, 0],
    ['an idle pool keeps its minimum', { policy: { min: 2 } }, 2, 2],
    ['one task wants one worker however short it is', { backlog: 1, meanTaskMs: 1 }, 1, 1],
    ['a backlog with no known task time still wants a worker', { backlog: 3, meanTaskMs: 0 }, 1, 1],
    ['wanted = ceil(backlog × mean / drain): 12 × 10 s / 60 s = 2', { backlog: 12 }, 2, 2],
    ['13 × 10 s / 60 s rounds up to 3', { backlog: 13 }, 3, 3],
    ['float noise in the mean does not round up a whole worker', { backlog: 1, meanTaskMs: 120_000.00000000001 }, 2, 2],
    ['a burst is capped at max', { backlog: 2000 }, 8, 8],
    ['only the difference to the live workers is started', { backlog: 2000, live: 3 }, 8, 5],
    ['workers still starting count as had', { backlog: 2000, live: 3, starting: 4 }, 8, 1],
    ['more workers than wanted: nothing is stopped', { backlog: 6, live: 5 }, 1, 0],
    ['max below the live count (a permanent worker beside the pool) starts nothing', { backlog: 2000, live: 9 }, 8, 0],
    ['a longer drain target wants fewer workers', { backlog: 60, policy: { targetDrainMs: 300_000 } }, 2, 2],
    ['min is kept even when the backlog alone wants fewer', { backlog: 1, policy: { min: 3 } }, 3, 3],
    ['within the cool-down nothing more starts', { backlog: 2000, live: 2, lastStartAt: NOW - 10_000 }, 8, 0],
    ['once the cool-down has passed the rest starts', { backlog: 2000, live: 2, lastStartAt: NOW - 30_000 }, 8, 6],
    ['a cool-down of 0 never holds back', { backlog: 2000, lastStartAt: NOW, policy: { cooldownMs: 0 } }, 8, 8],
    ['a cool-down does not matter when nothing is short', { backlog: 6, live: 1, lastStartAt: NOW - 1000 }, 1, 0],
  ];

  for (const [situation, over, wanted, toStart] of table) {
    it(situation, () => {
      const d = decide({ ...base, ...over, policy: { ...policy, ...over.policy } });
      expect({ wanted: d.wanted, toStart: d.toStart }).toEqual({ wanted, toStart });
    });
  }

  it('explains itself: formula, clamp, what the pool has and what it does', () => {
    expect(decide({ ...base, backlog: 2000, live: 3, starting: 1 }).reason).toBe(
      'backlog 2000 × 10000 ms / 60 s drain needs 334, capped at max 8; has 4 (3 live, 1 starting): start 4',
    );
    expect(decide({ ...base, policy: { ...policy, min: 1 } }).reason).toBe(
      'no backlog, raised to min 1; has 0 (0 live, 0 starting): start 1',
    );
    expect(decide({ ...base, backlog: 12, live: 2 }).reason).toBe(
      'backlog 12 × 10000 ms / 60 s drain needs 2 (min 0, max 8); has 2 (2 live, 0 starting): nothing to start',
    );
    const cooling = decide({ ...base, backlog: 2000, lastStartAt: NOW - 12_300 });
    expect(cooling.coolingDown).toBe(true);
    expect(cooling.reason).toMatch(/: 8 short, but cooling down \(last start 12\.3 s ago, cool-down 30 s\)$/);
  });

  it('never wants more than max nor fewer than min, whatever the inputs', () => {
    for (let backlog = 0; backlog < 5000; backlog += 37) {
      for (const meanTaskMs of [0, 1, 500, 10_000, 3_600_000]) {
        const d = decide({ ...base, backlog, meanTaskMs, live: backlog % 5, policy: { ...policy, min: 1, max: 6 } });
        expect(d.wanted).toBeGreaterThanOrEqual(1);
        expect(d.wanted).toBeLessThanOrEqual(6);
        expect(d.toStart).toBe(Math.max(0, d.wanted - (backlog % 5)));
      }
    }
  });
});
