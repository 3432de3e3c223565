/**
 * Fencing tokens enforced where effects land (design pitfall: a deposed clock leader may still fire a
 * tick). A fence row keeps the highest token admitted so far; every replica shares it through Postgres.
 *
 * - `raiseFence` once per tick: admits a token at or above the fence (raising it), refuses a lower one.
 * - `holdFence` inside each transaction that applies the tick's effects: a shared lock on the fence row,
 *   re-checked. A new leader's `raiseFence` waits for those transactions to commit, and every later
 *   transaction of the deposed leader sees the raised fence and is refused: no effect of a stale tick lands
 *   after a newer tick was admitted.
 *
 * Lease revisions restart at 1 if the clock's KV bucket is ever recreated (NATS data wiped while Postgres
 * was kept). A fence that no holder has confirmed for `resetAfterMs` therefore admits a lower token once:
 * a live leader confirms its token on every tick, so only an abandoned token series is ever reset.
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import { StaleFencingTokenError } from '@ppc/proto';

export { StaleFencingTokenError };

/** Ten minutes: far longer than any lease (seconds) plus the tick interval of the schedules fenced with it. */
export const FENCE_RESET_AFTER_MS = 10 * 60_000;

const RAISE_SQL = `
insert into fences (name, token, updated_at) values (?, ?, now())
    on conflict (name) do update set token = excluded.token, updated_at = now()
 where fences.token <= excluded.token or fences.updated_at < now() - make_interval(secs => ?)
returning token`;

const HOLD_SQL = 'select token from fences where name = ? for share';

/** Admits `token` (raising the fence to it) or returns false when a higher token was already admitted. */
export async function raiseFence(
  em: EntityManager,
  name: string,
  token: number,
  opts: { resetAfterMs?: number } = {},
): Promise<boolean> {
  const resetAfterS = (opts.resetAfterMs ?? FENCE_RESET_AFTER_MS) / 1000;
  const rows = await em.execute<{ token: string | number }[]>(RAISE_SQL, [name, token, resetAfterS]);
  return rows.length === 1;
}

/**
 * Call inside the transaction that applies a tick's effects: holds the fence (shared) until commit and throws
 * StaleFencingTokenError when a higher token has been admitted since this tick's `raiseFence`.
 */
export async function holdFence(em: EntityManager, name: string, token: number, what = 'tick'): Promise<void> {
  const [row] = await em.execute<{ token: string | number }[]>(HOLD_SQL, [name]);
  const highest = row ? Number(row.token) : 0;
  if (highest > token) throw new StaleFencingTokenError(token, highest, what);
}
