import { FencingGuard, StaleFencingTokenError } from '@ppc/proto';
import { describe, expect, it } from 'vitest';
import { clockEnv, loadSchedules } from './config.ts';
import { loadConfig } from '@ppc/lib/config';
import { ConfigError } from '@ppc/lib/errors';
import {
  compileSchedule,
  compileSchedules,
  InvalidScheduleError,
  latestAtOrBefore,
  planFires,
  type ScheduleSpec,
  systemSchedules,
} from './schedules.ts';

const T = (s: string) => Date.parse(s);
const iso = (t: number) => new Date(t).toISOString();
const every = (ms: number, catchUp: ScheduleSpec['catchUp'], extra: Partial<ScheduleSpec> = {}) =>
  compileSchedule({ name: 'beat', target: 'system', everyMs: ms, catchUp, ...extra });

describe('fire times', () => {
  it('puts interval ticks on multiples of the interval since the epoch, whatever the clock reads', () => {
    const s = every(5000, 'all');
    expect(iso(s.next(T('2026-11-23T10:00:02.345Z'))!)).toBe('2026-11-23T10:00:05.000Z');
    expect(iso(s.next(T('2026-11-23T10:00:05.000Z'))!)).toBe('2026-11-23T10:00:10.000Z');
    expect(s.previous(2, T('2026-11-23T10:00:05.000Z')).map(iso)).toEqual([
      '2026-11-23T10:00:00.000Z',
      '2026-11-23T09:59:55.000Z',
    ]);
    // Two replicas whose clocks differ still name the same tick.
    expect(s.next(T('2026-11-23T10:00:01.000Z'))).toBe(s.next(T('2026-11-23T10:00:04.999Z')));
  });

  it('keeps a daily 07:00 Europe/Prague schedule at 07:00 local across both DST changes', () => {
    const s = compileSchedule({
      name: 'send-digests',
      target: 'system',
      cron: '0 7 * * *',
      timeZone: 'Europe/Prague',
      catchUp: 'once',
    });
    const fourFrom = (from: string) => {
      const out: string[] = [];
      for (let t = s.next(T(from)); t !== null && out.length < 4; t = s.next(t)) out.push(iso(t));
      return out;
    };
    const march = fourFrom('2026-03-27T12:00:00Z');
    // CET (+01:00) until Sunday 29 March 02:00, CEST (+02:00) after.
    expect(march).toEqual([
      '2026-03-28T06:00:00.000Z',
      '2026-03-29T05:00:00.000Z',
      '2026-03-30T05:00:00.000Z',
      '2026-03-31T05:00:00.000Z',
    ]);
    const october = fourFrom('2026-10-23T12:00:00Z');
    // CEST until Sunday 25 October 03:00, CET after: the day is 25 hours long, 07:00 comes once.
    expect(october).toEqual([
      '2026-10-24T05:00:00.000Z',
      '2026-10-25T06:00:00.000Z',
      '2026-10-26T06:00:00.000Z',
      '2026-10-27T06:00:00.000Z',
    ]);
    // Catching up across the change finds the same instants backwards.
    expect(s.previous(3, T('2026-03-30T05:00:00Z')).map(iso)).toEqual([
      '2026-03-29T05:00:00.000Z',
      '2026-03-28T06:00:00.000Z',
      '2026-03-27T06:00:00.000Z',
    ]);
    const plan = planFires(
      { ...s, catchUp: 'all', maxCatchUp: 10 },
      T('2026-03-27T06:00:00Z'),
      T('2026-03-31T04:00:00Z'),
      T('2026-03-31T04:00:00Z'),
    );
    expect(plan.fire.map(iso)).toEqual([
      '2026-03-28T06:00:00.000Z',
      '2026-03-29T05:00:00.000Z',
      '2026-03-30T05:00:00.000Z',
    ]);
  });

  it('fires a 02:30 schedule once on the night 02:30 is skipped and once on the night it happens twice', () => {
    const s = compileSchedule({
      name: 'n',
      target: 'system',
      cron: '30 2 * * *',
      timeZone: 'Europe/Prague',
      catchUp: 'all',
    });
    const day = (from: string, to: string) => {
      const out: string[] = [];
      for (let t = s.next(T(from)); t !== null && t < T(to); t = s.next(t)) out.push(iso(t));
      return out;
    };
    // Spring forward: 02:00 → 03:00, so 02:30 does not exist; it fires at 03:00 CEST instead.
    expect(day('2026-03-28T22:00:00Z', '2026-03-29T22:00:00Z')).toEqual(['2026-03-29T01:00:00.000Z']);
    // Fall back: 02:30 happens twice (CEST, then CET); it fires only the first time.
    expect(day('2026-10-24T22:00:00Z', '2026-10-25T23:00:00Z')).toEqual(['2026-10-25T00:30:00.000Z']);
  });

  it('finds the baseline of a schedule that never fired', () => {
    const s = every(60_000, 'once');
    expect(iso(latestAtOrBefore(s, T('2026-11-23T10:00:30Z'))!)).toBe('2026-11-23T10:00:00.000Z');
    expect(iso(latestAtOrBefore(s, T('2026-11-23T10:01:00Z'))!)).toBe('2026-11-23T10:01:00.000Z');
  });
});

describe('catch-up plans', () => {
  // Last fired 10:00:00; the cluster was down until the term began at 10:00:05.5; now is 10:00:07.2.
  const last = T('2026-11-23T10:00:00Z');
  const since = T('2026-11-23T10:00:05.500Z');
  const now = T('2026-11-23T10:00:07.200Z');
  const times = (p: { fire: number[] }) => p.fire.map((t) => iso(t).slice(17, 19));

  it('all: every missed tick, oldest first, then the ones due during the term', () => {
    const p = planFires(every(1000, 'all'), last, since, now);
    expect(times(p)).toEqual(['01', '02', '03', '04', '05', '06', '07']);
    expect(p.skipped).toBe(0);
    expect(iso(p.upTo!)).toBe('2026-11-23T10:00:07.000Z');
  });

  it('all: at most maxCatchUp missed ticks, the most recent ones', () => {
    const p = planFires(every(1000, 'all', { maxCatchUp: 2 }), last, since, now);
    expect(times(p)).toEqual(['04', '05', '06', '07']);
    expect(p.skipped).toBe(3);
  });

  it('once: only the latest missed tick', () => {
    const p = planFires(every(1000, 'once'), last, since, now);
    expect(times(p)).toEqual(['05', '06', '07']);
    expect(p.skipped).toBe(4);
  });

  it('skip: none of the missed ticks, but it moves past them', () => {
    const p = planFires(every(1000, 'skip'), last, since, now);
    expect(times(p)).toEqual(['06', '07']);
    expect(p.skipped).toBe(5);
    expect(iso(p.upTo!)).toBe('2026-11-23T10:00:07.000Z');
  });

  it('skip with nothing due yet still records the skipped ticks', () => {
    const p = planFires(every(1000, 'skip'), last, since, T('2026-11-23T10:00:05.600Z'));
    expect(p.fire).toEqual([]);
    expect(iso(p.upTo!)).toBe('2026-11-23T10:00:05.000Z');
  });

  it('in a running term fires what fell due, however late the loop got to it, and nothing twice', () => {
    const s = every(1000, 'skip');
    const p = planFires(s, T('2026-11-23T10:00:06Z'), since, T('2026-11-23T10:00:09.100Z'));
    expect(times(p)).toEqual(['07', '08', '09']);
    expect(planFires(s, T('2026-11-23T10:00:09Z'), since, T('2026-11-23T10:00:09.900Z')).fire).toEqual([]);
  });

  it('counts a long outage without enumerating it', () => {
    const p = planFires(every(1000, 'once'), T('2025-11-23T10:00:00Z'), since, now);
    expect(p.skipped).toBe(365 * 86_400 + 4);
    expect(times(p)).toEqual(['05', '06', '07']);
  });
});

describe('schedule validation', () => {
  const bad = (raw: unknown) => {
    try {
      compileSchedule(raw);
    } catch (err) {
      return err as InvalidScheduleError;
    }
    throw new Error('expected an InvalidScheduleError');
  };

  it('names the schedule and the reason', () => {
    const e = bad({ name: 'nightly', target: 'system', cron: '61 * * * *', catchUp: 'once' });
    expect(e).toBeInstanceOf(InvalidScheduleError);
    expect(e.schedule).toBe('nightly');
    expect(e.message).toMatch(/^schedule "nightly" is invalid: cron "61 \* \* \* \*": .*minute/);
    expect(
      bad({ name: 'tz', target: 'system', cron: '0 7 * * *', timeZone: 'Mars/Olympus', catchUp: 'once' }).message,
    ).toMatch(/unknown time zone "Mars\/Olympus"/);
    expect(bad({ name: 'both', target: 'system', cron: '* * * * *', everyMs: 1000, catchUp: 'all' }).message).toMatch(
      /exactly one of cron and everyMs/,
    );
    expect(bad({ name: 'never', target: 'system', cron: '0 0 30 2 *', catchUp: 'all' }).message).toMatch(/never fires/);
    expect(bad({ name: 'fast', target: 'system', everyMs: 10, catchUp: 'all' }).message).toMatch(/everyMs/);
    expect(bad({ name: 'a.b', target: 'system', everyMs: 1000, catchUp: 'all' }).message).toMatch(/"a\.b".*\/name/);
    expect(bad({ name: 'p', target: 'queue', everyMs: 1000, catchUp: 'all' }).message).toMatch(/\/target/);
    expect(bad({ target: 'system', everyMs: 1000, catchUp: 'all' }).schedule).toBe('#1');
  });

  it('declares the system schedules, lets config replace one by name, and refuses duplicates', () => {
    const sys = compileSchedules([], systemSchedules('Europe/Prague'));
    expect(sys.map((s) => `${s.target}:${s.name}:${s.describe}:${s.catchUp}`)).toEqual([
      'system:enqueue-due-jobs:cron "* * * * *" Europe/Prague:once',
      'system:sync-accounts:cron "0 * * * *" Europe/Prague:once',
      'system:send-digests:cron "0 7 * * *" Europe/Prague:once',
      'cluster:evaluate:every 5000 ms:skip',
    ]);
    const merged = compileSchedules(
      [{ name: 'evaluate', target: 'cluster', everyMs: 10_000, catchUp: 'skip' }],
      systemSchedules('UTC'),
    );
    expect(merged.find((s) => s.name === 'evaluate')?.describe).toBe('every 10000 ms');
    expect(merged).toHaveLength(4);
    const dup = { name: 'x', target: 'system', everyMs: 1000, catchUp: 'all' };
    expect(() => compileSchedules([dup, dup], [])).toThrow(/schedule "x" is invalid: declared twice/);
  });

  it('reads the configuration, naming a bad variable', () => {
    const cfg = (env: Record<string, string>) => loadSchedules(loadConfig(clockEnv, env));
    expect(cfg({ PPC_CLOCK_TIME_ZONE: 'Europe/Prague' }).map((s) => s.name)).toContain('send-digests');
    expect(cfg({ PPC_CLOCK_SYSTEM_SCHEDULES: 'false' })).toEqual([]);
    expect(() => cfg({ PPC_CLOCK_TIME_ZONE: 'Nowhere/Special' })).toThrow(ConfigError);
    expect(() => cfg({ PPC_CLOCK_TIME_ZONE: 'Nowhere/Special' })).toThrow(/PPC_CLOCK_TIME_ZONE/);
    expect(() => cfg({ PPC_CLOCK_SCHEDULES: '[{' })).toThrow(/PPC_CLOCK_SCHEDULES=.*valid JSON/);
    expect(() => cfg({ PPC_CLOCK_SCHEDULES: '{}' })).toThrow(/a JSON array/);
    expect(() => cfg({ PPC_CLOCK_LEASE_TTL_MS: '100' })).toThrow(/PPC_CLOCK_LEASE_TTL_MS/);
    expect(() =>
      cfg({ PPC_CLOCK_SCHEDULES: '[{"name":"bad-one","target":"system","cron":"nope","catchUp":"once"}]' }),
    ).toThrow(/schedule "bad-one" is invalid/);
  });
});

describe('FencingGuard', () => {
  it('admits a term token and anything newer, and refuses a deposed leader’s older token', () => {
    const g = new FencingGuard();
    expect(g.admit(5)).toBe(true);
    expect(g.admit(5)).toBe(true); // same term, next tick
    expect(g.admit(9)).toBe(true); // new leader
    expect(g.admit(5)).toBe(false); // the old leader woke up
    expect(g.highest).toBe(9);
    expect(() => g.assert(7, 'tick evaluate')).toThrow(StaleFencingTokenError);
    expect(() => g.assert(7)).toThrow(/fencing token 7, lower than 9/);
    expect(g.admit(0)).toBe(false);
    expect(g.admit(Number.NaN)).toBe(false);
    expect(new FencingGuard(12).admit(11)).toBe(false);
  });
});
