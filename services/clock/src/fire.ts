/**
 * The leader's firing loop. For every schedule it fires the ticks due since `clock-state`'s last fired
 * time (catch-up policy for those missed before the term began), records each one, sleeps until the
 * next fire time, and stops the moment the lease can no longer be trusted.
 *
 * Exactly once: a tick's id is `tick.<schedule>.<scheduledAt>`, the same on every replica, so a tick
 * fired twice (a leader died between publishing and recording it, or two leaders overlapped for a
 * moment) is dropped by the stream's duplicate window. The state is written after the publish is
 * acknowledged, so a crash between the two can only repeat a tick, never lose one.
 */
import { JetStreamApiCodes, JetStreamApiError, type JetStreamClient } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { Logger } from '@ppc/lib/log';
import { publish } from '@ppc/lib/nats';
import { type ClockTick, ClusterTaskMsg, SystemTaskMsg } from '@ppc/proto';
import { planFires, type Schedule } from './schedules.ts';

/** What `clock-state` holds per schedule (key = schedule name). */
export interface ScheduleState {
  lastFiredAt: string;
  fencingToken: number;
  leader: string;
  at: string;
  /** Set when a leader recorded a starting point for a schedule that had never fired. */
  baseline?: boolean;
}

export type TickOutcome = 'fired' | 'duplicate' | 'skipped';

export interface FirerOptions {
  js: JetStreamClient;
  state: KV;
  schedules: readonly Schedule[];
  instanceId: string;
  log: Logger;
  /** The lease check made before every fire. */
  isValid(): boolean;
  onTick?(schedule: string, outcome: TickOutcome, count: number, scheduledAt: number): void;
  /** Longest sleep between two looks at the schedules (wall-clock jumps are noticed by then). */
  maxSleepMs?: number;
}

/** A newer term has recorded state: this leader has been deposed and must stop. */
export class DeposedError extends Error {
  override name = 'DeposedError';
  readonly token: number;
  readonly newer: number;
  constructor(token: number, newer: number, schedule: string) {
    super(`clock-state of ${schedule} was written by term ${newer}, newer than ours (${token})`);
    this.token = token;
    this.newer = newer;
  }
}

const isWrongRevision = (err: unknown) =>
  err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence;

const iso = (t: number) => new Date(t).toISOString();

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal.addEventListener('abort', done, { once: true });
  });
}

interface Known {
  t: number;
  rev: number;
}

export class Firer {
  readonly #o: FirerOptions;
  /** The current term's view of `clock-state`; each term has its own, so a finishing old term cannot mix in. */
  #known = new Map<string, Known>();
  readonly #maxSleepMs: number;

  constructor(o: FirerOptions) {
    this.#o = o;
    this.#maxSleepMs = o.maxSleepMs ?? 30_000;
  }

  /** The last fired time this leader knows of, per schedule (empty before its first term). */
  lastFired(schedule: string): number | undefined {
    return this.#known.get(schedule)?.t;
  }

  /**
   * Fires for one leadership term until `signal` aborts or the lease stops being valid. Throws
   * DeposedError when `clock-state` shows a newer term; other failures (NATS away) are retried.
   */
  async runTerm(token: number, since: number, signal: AbortSignal): Promise<void> {
    const { log } = this.#o;
    const known = new Map<string, Known>();
    this.#known = known;
    const live = () => !signal.aborted && this.#o.isValid();
    while (live()) {
      try {
        for (const s of this.#o.schedules) known.set(s.name, await this.#load(s, token, since));
        break;
      } catch (err) {
        if (err instanceof DeposedError) throw err;
        log.warn({ err: (err as Error).message }, 'cannot read clock-state; retrying');
        await sleep(250, signal);
      }
    }
    while (live()) {
      try {
        const next = await this.#fireDue(known, token, since, live);
        const wake = Math.min(next - Date.now(), this.#maxSleepMs);
        await sleep(wake, signal);
      } catch (err) {
        if (err instanceof DeposedError) throw err;
        log.warn({ err: (err as Error).message }, 'firing failed; retrying');
        await sleep(250, signal);
      }
    }
  }

  /** Reads a schedule's last fired time; a schedule that never fired starts from its last time before the term. */
  async #load(s: Schedule, token: number, since: number): Promise<Known> {
    for (;;) {
      const e = await this.#o.state.get(s.name);
      if (e && e.operation === 'PUT') {
        const v = e.json<ScheduleState>();
        if (v.fencingToken > token) throw new DeposedError(token, v.fencingToken, s.name);
        return { t: Date.parse(v.lastFiredAt), rev: e.revision };
      }
      const baseline = s.previous(1, since)[0] ?? since - 1;
      try {
        const rev = await this.#o.state.create(s.name, this.#stateValue(baseline, token, true));
        this.#o.log.info({ schedule: s.name, baseline: iso(baseline) }, 'schedule starts here');
        return { t: baseline, rev };
      } catch (err) {
        if (!isWrongRevision(err)) throw err;
        // Someone else created it in the meantime: read it again.
      }
    }
  }

  #stateValue(t: number, token: number, baseline = false): string {
    const v: ScheduleState = {
      lastFiredAt: iso(t),
      fencingToken: token,
      leader: this.#o.instanceId,
      at: new Date().toISOString(),
      ...(baseline ? { baseline } : {}),
    };
    return JSON.stringify(v);
  }

  /** Fires every due tick; returns the earliest next fire time over all schedules. */
  async #fireDue(known: Map<string, Known>, token: number, since: number, live: () => boolean): Promise<number> {
    let next = Number.POSITIVE_INFINITY;
    for (const s of this.#o.schedules) {
      const k = known.get(s.name);
      if (!k) continue;
      const plan = planFires(s, k.t, since, Date.now());
      if (plan.skipped > 0) {
        this.#o.log.warn({ schedule: s.name, skipped: plan.skipped, policy: s.catchUp }, 'missed ticks not fired');
        this.#o.onTick?.(s.name, 'skipped', plan.skipped, plan.upTo ?? k.t);
      }
      for (const t of plan.fire) {
        if (!live()) return next;
        await this.#fire(s, t, token, live);
        await this.#record(known, s, t, token);
      }
      if (plan.upTo !== null && plan.upTo > (known.get(s.name)?.t ?? 0)) await this.#record(known, s, plan.upTo, token);
      const last = known.get(s.name)?.t ?? k.t;
      const n = s.next(Math.max(last, Date.now()));
      if (n !== null) next = Math.min(next, n);
    }
    return next;
  }

  async #fire(s: Schedule, t: number, token: number, live: () => boolean): Promise<void> {
    const body: ClockTick = {
      schedule: s.name,
      scheduledAt: iso(t),
      firedAt: new Date().toISOString(),
      fencingToken: token,
      leader: this.#o.instanceId,
      payload: s.payload,
    };
    const def = s.target === 'system' ? SystemTaskMsg : ClusterTaskMsg;
    let lastErr: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      // Re-checked before every attempt: a deposed leader must not keep publishing.
      if (!live()) throw new Error(`lease lost before firing ${s.name} ${body.scheduledAt}`);
      try {
        const ack = await publish(this.#o.js, def, body, { retries: 0, timeoutMs: 2000 });
        const outcome = ack.duplicate ? 'duplicate' : 'fired';
        this.#o.log.debug(
          { schedule: s.name, scheduledAt: body.scheduledAt, fencingToken: token, outcome, seq: ack.seq },
          'tick',
        );
        this.#o.onTick?.(s.name, outcome, 1, t);
        return;
      } catch (err) {
        lastErr = err;
      }
    }
    throw lastErr;
  }

  /** Records `t` as the schedule's last fired time, compare-and-swap, never moving it backwards. */
  async #record(known: Map<string, Known>, s: Schedule, t: number, token: number): Promise<void> {
    const k = known.get(s.name);
    if (!k) return;
    let rev = k.rev;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const newRev = await this.#o.state.update(s.name, this.#stateValue(t, token), rev);
        known.set(s.name, { t, rev: newRev });
        return;
      } catch (err) {
        if (!isWrongRevision(err)) throw err;
        const e = await this.#o.state.get(s.name);
        if (e?.operation !== 'PUT') throw new Error(`clock-state of ${s.name} disappeared`);
        const v = e.json<ScheduleState>();
        if (v.fencingToken > token) throw new DeposedError(token, v.fencingToken, s.name);
        const stored = Date.parse(v.lastFiredAt);
        if (stored >= t) {
          known.set(s.name, { t: stored, rev: e.revision });
          return;
        }
        rev = e.revision;
      }
    }
    throw new Error(`clock-state of ${s.name} keeps changing under us`);
  }
}
