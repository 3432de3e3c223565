/**
 * Fencing tokens of clock ticks. Every tick carries `fencingToken`: the `clock-lease` revision at which
 * its leader won the lease. A later leader always holds a higher token, so where a tick's effects land
 * the consumer keeps the highest token it has seen and refuses a lower one: that tick came from a
 * deposed leader that did not yet know it had lost the lease. Ticks of the same term share a token.
 *
 * This guard is the in-memory form, for a consumer whose effects live in its own process. Effects in
 * Postgres record the token in the row they change and compare in the same statement
 * (`... WHERE fencing_token <= $token`), so every replica shares the same "highest seen".
 */

export class StaleFencingTokenError extends Error {
  override name = 'StaleFencingTokenError';
  readonly token: number;
  readonly highest: number;
  constructor(token: number, highest: number, what = 'tick') {
    super(`${what} carries fencing token ${token}, lower than ${highest} already seen: it comes from a deposed leader`);
    this.token = token;
    this.highest = highest;
  }
}

export class FencingGuard {
  #highest = 0;

  /** Starts from a token already recorded elsewhere (0: none seen). */
  constructor(highestSeen = 0) {
    this.#highest = highestSeen;
  }

  /** The highest token admitted so far. */
  get highest(): number {
    return this.#highest;
  }

  /** True, and remembers the token, unless it is lower than one seen before. */
  admit(token: number): boolean {
    if (!Number.isSafeInteger(token) || token < 1) return false;
    if (token < this.#highest) return false;
    this.#highest = token;
    return true;
  }

  /** Like `admit`, but throws StaleFencingTokenError for a stale token (for handlers that terminate it). */
  assert(token: number, what?: string): void {
    if (!this.admit(token)) throw new StaleFencingTokenError(token, this.#highest, what);
  }
}
