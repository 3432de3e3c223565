/**
 * Idle exit: a worker that has had nothing to do for a while stops itself, gracefully, so a pool the
 * autoscaler grew shrinks back without anyone deciding to shrink it. A service opts in by adding
 * `idleEnv` to its env spec; the runtime then watches its in-flight count.
 */
import { Type } from '@sinclair/typebox';
import type { Logger } from 'pino';
import { envVar } from '../config/index.ts';

export const DEFAULT_IDLE_EXIT_MS = 10 * 60 * 1000;

export const idleEnv = {
  idleExitMs: envVar({
    env: 'PPC_IDLE_EXIT_MS',
    schema: Type.Integer({ minimum: 0, maximum: 7 * 24 * 60 * 60 * 1000 }),
    default: DEFAULT_IDLE_EXIT_MS,
    doc: 'milliseconds without in-flight work after which this worker stops itself (0 = never; at most 7 days)',
  }),
};

export interface IdleWatchOptions {
  idleExitMs: number;
  /** Work in hand right now; any value above 0 restarts the idle period. */
  inFlight(): number;
  /** Called once, when the idle period has passed. */
  onIdle(idleForMs: number): void;
  log?: Logger;
  /** How often the in-flight count is looked at; default a tenth of the period, 50 ms to 1 s. */
  checkEveryMs?: number;
  now?: () => number;
}

export interface IdleWatch {
  /** Restarts the idle period (work just happened). */
  touch(): void;
  stop(): void;
}

/**
 * Calls `onIdle` once `inFlight()` has been 0 at every look for `idleExitMs`. Looking is sampling: a
 * task that starts and ends between two looks goes unseen, which only matters for a worker so nearly
 * idle that a look every second never finds it busy.
 */
export function watchIdle(o: IdleWatchOptions): IdleWatch {
  const now = o.now ?? (() => performance.now());
  let lastBusy = now();
  let fired = false;
  if (o.idleExitMs <= 0) return { touch() {}, stop() {} };
  const every = o.checkEveryMs ?? Math.min(1000, Math.max(50, Math.floor(o.idleExitMs / 10)));
  const timer = setInterval(() => {
    const t = now();
    if (o.inFlight() > 0) {
      lastBusy = t;
      return;
    }
    if (fired || t - lastBusy < o.idleExitMs) return;
    fired = true;
    clearInterval(timer);
    o.log?.info({ idleForMs: Math.round(t - lastBusy), idleExitMs: o.idleExitMs }, 'idle, stopping');
    o.onIdle(t - lastBusy);
  }, every);
  // Being idle is no reason to keep a process alive.
  timer.unref();
  return {
    touch() {
      lastBusy = now();
    },
    stop() {
      clearInterval(timer);
    },
  };
}
