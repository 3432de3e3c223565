/**
 * Schedules: what the clock fires, when, and what it does about ticks it missed. Declared in code
 * (the system schedules) and in config (`PPC_CLOCK_SCHEDULES`); everything here is pure, so every
 * replica computes the same fire times, and so the same tick ids, whatever its own clock says.
 */
import { type Static, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { TOKEN_PATTERN } from '@ppc/proto';
import { Cron } from 'croner';

/** What a schedule does about ticks that fell due while no replica was leading. */
export const catchUpPolicies = ['once', 'all', 'skip'] as const;
export type CatchUpPolicy = (typeof catchUpPolicies)[number];

/** How many missed ticks `all` fires at most (the most recent ones) unless a schedule says otherwise. */
export const DEFAULT_MAX_CATCH_UP = 100;
const MIN_INTERVAL_MS = 1000;

export const ScheduleSpec = Type.Object(
  {
    /** Unique; also the last token of the target subject and part of every tick id. */
    name: Type.String({ pattern: TOKEN_PATTERN }),
    /** `system` fires `tasks.system.<name>`, `cluster` fires `tasks.cluster.<name>`. */
    target: Type.Union([Type.Literal('system'), Type.Literal('cluster')]),
    /** Cron expression (5 fields, or 6 with seconds first), read in `timeZone`. */
    cron: Type.Optional(Type.String({ minLength: 1 })),
    /** IANA zone for `cron`; default UTC. */
    timeZone: Type.Optional(Type.String({ minLength: 1 })),
    /** Fixed interval instead of cron: ticks at every multiple of it since the Unix epoch. */
    everyMs: Type.Optional(Type.Integer({ minimum: MIN_INTERVAL_MS })),
    payload: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    catchUp: Type.Union(catchUpPolicies.map((p) => Type.Literal(p))),
    /** For `all`: at most this many missed ticks, the most recent ones. */
    maxCatchUp: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
  },
  { additionalProperties: false },
);
export type ScheduleSpec = Static<typeof ScheduleSpec>;

const checkSpec = TypeCompiler.Compile(ScheduleSpec);

/** A schedule that cannot run; start-up stops with this message, which names the schedule. */
export class InvalidScheduleError extends Error {
  override name = 'InvalidScheduleError';
  readonly schedule: string;
  constructor(schedule: string, reason: string) {
    super(`schedule ${JSON.stringify(schedule)} is invalid: ${reason}`);
    this.schedule = schedule;
  }
}

/** A validated schedule with its time arithmetic. All times are epoch milliseconds. */
export interface Schedule {
  readonly spec: ScheduleSpec;
  readonly name: string;
  readonly target: 'system' | 'cluster';
  readonly catchUp: CatchUpPolicy;
  readonly maxCatchUp: number;
  readonly payload: Record<string, unknown>;
  /** The first fire time strictly after `t`, or null when there is none. */
  next(t: number): number | null;
  /** Up to `n` fire times strictly before `t`, newest first. */
  previous(n: number, t: number): number[];
  /** Human description, e.g. `cron "0 7 * * *" Europe/Prague` or `every 5000 ms`. */
  readonly describe: string;
}

/** The schedules the mesh needs, in the zone the operator configured for daily work. */
export function systemSchedules(timeZone: string): ScheduleSpec[] {
  return [
    // Claims every due job in one go, so one late tick catches up everything.
    { name: 'enqueue-due-jobs', target: 'system', cron: '* * * * *', timeZone, catchUp: 'once' },
    { name: 'sync-accounts', target: 'system', cron: '0 * * * *', timeZone, catchUp: 'once' },
    // One digest late beats none; two in a row would be spam.
    { name: 'send-digests', target: 'system', cron: '0 7 * * *', timeZone, catchUp: 'once' },
    // Only the newest cluster tick matters (the stream keeps one per subject).
    { name: 'evaluate', target: 'cluster', everyMs: 5000, catchUp: 'skip' },
  ];
}

export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

function nameOf(raw: unknown, index: number): string {
  const n = (raw as { name?: unknown } | null)?.name;
  return typeof n === 'string' && n ? n : `#${index + 1}`;
}

/** Validates one schedule; throws InvalidScheduleError naming it. */
export function compileSchedule(raw: unknown, index = 0): Schedule {
  const name = nameOf(raw, index);
  if (!checkSpec.Check(raw)) {
    const e = checkSpec.Errors(raw).First();
    throw new InvalidScheduleError(name, `${e?.path || '(schedule)'}: ${e?.message ?? 'invalid'}`);
  }
  const spec = raw;
  if ((spec.cron === undefined) === (spec.everyMs === undefined)) {
    throw new InvalidScheduleError(name, 'set exactly one of cron and everyMs');
  }
  if (spec.timeZone !== undefined && spec.cron === undefined) {
    throw new InvalidScheduleError(name, 'timeZone applies to cron schedules only');
  }
  if (spec.maxCatchUp !== undefined && spec.catchUp !== 'all') {
    throw new InvalidScheduleError(name, 'maxCatchUp applies to catchUp "all" only');
  }
  const common = {
    spec,
    name: spec.name,
    target: spec.target,
    catchUp: spec.catchUp,
    maxCatchUp: spec.maxCatchUp ?? DEFAULT_MAX_CATCH_UP,
    payload: spec.payload ?? {},
  };
  if (spec.everyMs !== undefined) {
    const every = spec.everyMs;
    return {
      ...common,
      describe: `every ${every} ms`,
      next: (t) => (Math.floor(t / every) + 1) * every,
      previous: (n, t) => {
        const out: number[] = [];
        let k = Math.ceil(t / every) - 1;
        while (out.length < n) out.push(k-- * every);
        return out;
      },
    };
  }
  const zone = spec.timeZone ?? 'UTC';
  if (!isTimeZone(zone)) throw new InvalidScheduleError(name, `unknown time zone ${JSON.stringify(zone)}`);
  let cron: Cron;
  try {
    cron = new Cron(spec.cron ?? '', { timezone: zone, paused: true });
  } catch (err) {
    throw new InvalidScheduleError(name, `cron ${JSON.stringify(spec.cron)}: ${(err as Error).message}`);
  }
  if (cron.nextRun(new Date()) === null) {
    throw new InvalidScheduleError(name, `cron ${JSON.stringify(spec.cron)} never fires`);
  }
  return {
    ...common,
    describe: `cron ${JSON.stringify(spec.cron)} ${zone}`,
    next: (t) => cron.nextRun(new Date(t))?.getTime() ?? null,
    previous: (n, t) => cron.previousRuns(n, new Date(t)).map((d) => d.getTime()),
  };
}

/**
 * The system schedules (unless turned off) with the configured ones over them: a configured schedule
 * with a system schedule's name replaces it. Names must be unique; throws InvalidScheduleError.
 */
export function compileSchedules(configured: readonly unknown[], system: readonly ScheduleSpec[]): Schedule[] {
  const byName = new Map<string, Schedule>();
  system.forEach((s, i) => void byName.set(s.name, compileSchedule(s, i)));
  const seen = new Set<string>();
  configured.forEach((raw, i) => {
    const s = compileSchedule(raw, i);
    if (seen.has(s.name)) throw new InvalidScheduleError(s.name, 'declared twice in PPC_CLOCK_SCHEDULES');
    seen.add(s.name);
    byName.set(s.name, s);
  });
  return [...byName.values()];
}

/** What a leader does for one schedule at `now`. */
export interface FirePlan {
  /** Fire times to publish, oldest first. */
  fire: number[];
  /** Missed ticks the policy leaves out. */
  skipped: number;
  /** The newest due time, fired or not: the schedule's new "last fired" once the plan is done. */
  upTo: number | null;
}

/**
 * Plans the ticks due at `now` for a leader whose term began at `since`, given the last tick recorded
 * in `clock-state` (`lastFired`). A due tick is *missed* when it fell due before the term began (no
 * one was leading, or a leader died before firing it); the catch-up policy decides those. Ticks due
 * during the term are always fired, however late the event loop got to them.
 */
export function planFires(s: Schedule, lastFired: number, since: number, now: number): FirePlan {
  // Missed: lastFired < t < since (and t <= now). `previous` is exclusive of its reference.
  const missedEnd = Math.min(since, now + 1);
  const keep = s.catchUp === 'all' ? s.maxCatchUp : s.catchUp === 'once' ? 1 : 0;
  const firstDue = s.next(lastFired);
  // In a running term lastFired >= since, so nothing is missed and the backwards search is skipped.
  const anyMissed = firstDue !== null && firstDue < missedEnd;
  const missedNewest = anyMissed ? s.previous(keep + 1, missedEnd).filter((t) => t > lastFired) : [];
  const missedTotal = missedNewest.length > keep ? countBetween(s, lastFired, missedEnd) : missedNewest.length;
  const fire = missedNewest.slice(0, keep).reverse();
  const skipped = missedTotal - fire.length;
  let upTo: number | null = missedNewest[0] ?? null;
  // On time: max(lastFired, since - 1) < t <= now.
  let t = s.next(Math.max(lastFired, since - 1));
  while (t !== null && t <= now) {
    fire.push(t);
    upTo = t;
    t = s.next(t);
  }
  return { fire, skipped, upTo };
}

/** Fire times in (after, before); exact for intervals, counted by stepping for cron (at most `cap`). */
function countBetween(s: Schedule, after: number, before: number, cap = 10_000): number {
  const every = s.spec.everyMs;
  if (every !== undefined) {
    const first = Math.floor(after / every) + 1;
    const last = Math.ceil(before / every) - 1;
    return Math.max(0, last - first + 1);
  }
  let n = 0;
  let t = s.next(after);
  while (t !== null && t < before && n < cap) {
    n++;
    t = s.next(t);
  }
  return n;
}

/** The most recent fire time at or before `t` (the baseline of a schedule that never fired). */
export function latestAtOrBefore(s: Schedule, t: number): number | null {
  return s.previous(1, t + 1)[0] ?? null;
}
