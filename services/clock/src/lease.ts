/**
 * Leader election on the `clock-lease` KV bucket, whose bucket-wide TTL is the lease.
 *
 * - Acquire: `create` of the key succeeds only when no live lease exists. Its revision is the term's
 *   fencing token; later terms always get a higher one (the bucket's sequence only grows).
 * - Renew: `update` with the last revision, every third of the TTL. Leadership is decided only from
 *   the result of our own compare-and-swap, never from a `get` (KV reads may be stale).
 * - Step down at once when a renewal fails, or when it has not succeeded in time: the lease is
 *   trusted until `sent + TTL - guard`, measured on the monotonic clock from the moment the last
 *   successful write was *sent* (the server's expiry can only be later than that).
 * - Followers watch the key. A delete (a leader's graceful release) makes them try at once; a lease
 *   that simply expires leaves no event, so they also try when the TTL since the last write they saw
 *   has passed, then poll briefly until one wins.
 */
import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { QueuedIterator } from '@nats-io/transport-node';
import type { Logger } from '@ppc/lib/log';

export const LEASE_KEY = 'leader';

export type LeaseChange =
  | { kind: 'elected'; token: number; since: number; previous: string | null }
  | { kind: 'deposed'; token: number; reason: string }
  | { kind: 'released'; token: number };

export interface LeaseOptions {
  kv: KV;
  instanceId: string;
  ttlMs: number;
  log: Logger;
  key?: string;
  /** Monotonic milliseconds; injectable for tests. */
  now?: () => number;
}

interface LeaseValue {
  instanceId: string;
  since: string;
}

const isWrongRevision = (err: unknown) =>
  err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamWrongLastSequence;

export class Lease {
  readonly instanceId: string;
  readonly ttlMs: number;
  /** Renewal period. */
  readonly renewMs: number;
  /** A lease is not trusted in its last `guardMs`, so a tick sent just before then lands in time. */
  readonly guardMs: number;
  /** How often a follower retries while an expired lease is being taken over. */
  readonly pollMs: number;

  readonly #kv: KV;
  readonly #key: string;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #listeners: Array<(c: LeaseChange) => void> = [];

  #leader = false;
  #token = 0;
  #revision = 0;
  #value = '';
  #validUntil = 0;
  #sinceWall = 0;
  /** Monotonic time of the last lease write we know of (ours, or one we watched). */
  #lastWrite = 0;
  #holder: string | null = null;
  #lastHolder: string | null = null;
  #acquiring = false;
  #stopped = false;
  #renewTimer: NodeJS.Timeout | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #followTimer: NodeJS.Timeout | undefined;
  #watcher: QueuedIterator<KvWatchEntry> | undefined;

  constructor(o: LeaseOptions) {
    this.#kv = o.kv;
    this.#key = o.key ?? LEASE_KEY;
    this.#log = o.log;
    this.#now = o.now ?? (() => performance.now());
    this.instanceId = o.instanceId;
    this.ttlMs = o.ttlMs;
    this.renewMs = Math.floor(o.ttlMs / 3);
    this.guardMs = Math.max(100, Math.floor(o.ttlMs / 6));
    this.pollMs = Math.min(250, Math.max(50, Math.floor(o.ttlMs / 10)));
  }

  onChange(fn: (c: LeaseChange) => void): void {
    this.#listeners.push(fn);
  }

  /** Starts watching the key and tries to become leader. */
  async start(): Promise<void> {
    this.#watcher = await this.#kv.watch({ key: this.#key });
    const watcher = this.#watcher;
    void (async () => {
      for await (const e of watcher) this.#observe(e);
    })().catch((err) => this.#log.warn({ err: (err as Error).message }, 'lease watch ended'));
    await this.#tryAcquire();
  }

  /** Leader with a lease it can still trust: checked before every fire. */
  isValid(): boolean {
    return this.#leader && !this.#stopped && this.#now() < this.#validUntil - this.guardMs;
  }

  get isLeader(): boolean {
    return this.#leader;
  }

  /** The fencing token of the current (or last) term this instance led. */
  get token(): number {
    return this.#token;
  }

  /** Wall-clock start of the current term (ms), 0 when not leading. */
  get since(): number {
    return this.#leader ? this.#sinceWall : 0;
  }

  /** Who holds the lease as far as this instance knows (itself when leading). */
  get holder(): string | null {
    return this.#leader ? this.instanceId : this.#holder;
  }

  /** Milliseconds since the lease was last written (renewed), or null when none is known. */
  ageMs(): number | null {
    if (!this.#leader && this.#holder === null) return null;
    return Math.max(0, this.#now() - this.#lastWrite);
  }

  /** Gives leadership up now (the firing loop cannot go on); another replica, or this one, takes over. */
  resign(reason: string): void {
    this.#stepDown(reason, true);
  }

  /** Stops electing; a leader gives the lease back at once (deletes its key) when `release` is set. */
  async stop(opts: { release: boolean }): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#followTimer);
    clearTimeout(this.#renewTimer);
    clearTimeout(this.#watchdog);
    this.#watcher?.stop();
    if (!this.#leader) return;
    this.#leader = false;
    this.#emit({ kind: 'released', token: this.#token });
    if (opts.release) {
      await this.#kv
        .delete(this.#key, { previousSeq: this.#revision })
        .then(() => this.#log.info({ fencingToken: this.#token }, 'lease released'))
        .catch((err) => this.#log.warn({ err: (err as Error).message }, 'lease release failed; it will expire'));
    }
  }

  #emit(c: LeaseChange): void {
    for (const fn of this.#listeners) {
      try {
        fn(c);
      } catch (err) {
        this.#log.error({ err }, 'lease listener failed');
      }
    }
  }

  async #tryAcquire(): Promise<void> {
    if (this.#stopped || this.#leader || this.#acquiring) return;
    this.#acquiring = true;
    clearTimeout(this.#followTimer);
    const sent = this.#now();
    const value = JSON.stringify({ instanceId: this.instanceId, since: new Date().toISOString() } satisfies LeaseValue);
    try {
      const rev = await this.#kv.create(this.#key, value);
      if (this.#stopped) {
        await this.#kv.delete(this.#key, { previousSeq: rev }).catch(() => {});
        return;
      }
      this.#becomeLeader(rev, sent, value);
    } catch (err) {
      if (!isWrongRevision(err)) this.#log.warn({ err: (err as Error).message }, 'lease acquisition failed');
      // Someone holds it (we just have not seen their write yet) or NATS is away: look again shortly.
      this.#follow(this.pollMs);
    } finally {
      this.#acquiring = false;
    }
  }

  #becomeLeader(rev: number, sent: number, value: string): void {
    const previous = this.#lastHolder;
    this.#leader = true;
    this.#token = rev;
    this.#revision = rev;
    this.#value = value;
    this.#sinceWall = Date.now();
    this.#holder = this.instanceId;
    this.#lastHolder = this.instanceId;
    this.#extend(sent);
    this.#log.info({ fencingToken: rev, previous }, 'became leader');
    this.#emit({ kind: 'elected', token: rev, since: this.#sinceWall, previous });
  }

  /** A write sent at `sent` succeeded: trust the lease until sent + TTL - guard, renew at sent + TTL/3. */
  #extend(sent: number): void {
    this.#validUntil = sent + this.ttlMs;
    this.#lastWrite = sent;
    clearTimeout(this.#watchdog);
    this.#watchdog = setTimeout(() => this.#checkLate(), Math.max(0, this.#validUntil - this.guardMs - this.#now()));
    clearTimeout(this.#renewTimer);
    this.#renewTimer = setTimeout(() => void this.#renew(), Math.max(0, sent + this.renewMs - this.#now()));
  }

  #checkLate(): void {
    if (this.#leader && !this.isValid()) this.#stepDown('renewal late', true);
  }

  async #renew(): Promise<void> {
    if (!this.#leader || this.#stopped) return;
    const term = this.#token;
    const sent = this.#now();
    // A renewal that has not landed when the lease stops being trusted is late: the timeout says so.
    const timeout = Math.max(1, Math.floor(this.#validUntil - this.guardMs - sent));
    try {
      const rev = await this.#kv.update(this.#key, this.#value, this.#revision, timeout);
      if (!this.#leader || this.#token !== term || this.#stopped) {
        // We stepped down meanwhile; the write still went through, so give the key back.
        await this.#kv.delete(this.#key, { previousSeq: rev }).catch(() => {});
        return;
      }
      this.#revision = rev;
      if (this.#now() >= this.#validUntil - this.guardMs) {
        this.#stepDown('renewal late', true);
        return;
      }
      this.#extend(sent);
    } catch (err) {
      if (this.#leader && this.#token === term) {
        this.#stepDown(`renewal failed: ${(err as Error).message}`, !isWrongRevision(err));
      }
    }
  }

  /** `mayHold`: the key may still be ours, so delete it (only if unchanged) to let a follower in now. */
  #stepDown(reason: string, mayHold: boolean): void {
    if (!this.#leader) return;
    this.#leader = false;
    this.#holder = null;
    clearTimeout(this.#renewTimer);
    clearTimeout(this.#watchdog);
    this.#log.warn({ fencingToken: this.#token, reason }, 'stepped down');
    this.#emit({ kind: 'deposed', token: this.#token, reason });
    if (mayHold) {
      void this.#kv.delete(this.#key, { previousSeq: this.#revision }).catch(() => {});
    }
    this.#follow(this.pollMs);
  }

  #follow(delayMs: number): void {
    if (this.#stopped || this.#leader) return;
    clearTimeout(this.#followTimer);
    this.#followTimer = setTimeout(() => void this.#tryAcquire(), Math.max(0, delayMs));
  }

  #observe(e: KvWatchEntry): void {
    if (e.operation === 'PUT') {
      let holder: string;
      try {
        holder = e.json<LeaseValue>().instanceId;
      } catch {
        holder = '(unreadable)';
      }
      if (this.#leader) {
        if (e.revision > this.#revision && holder !== this.instanceId)
          this.#stepDown(`${holder} holds the lease`, false);
        return;
      }
      // Our own create, seen before its ack: not a previous holder.
      if (holder === this.instanceId && this.#acquiring) return;
      this.#holder = holder;
      this.#lastHolder = holder;
      // A live update was written just now; one from the initial snapshot was written `created` ago.
      const age = e.isUpdate ? 0 : Math.min(this.ttlMs, Math.max(0, Date.now() - e.created.getTime()));
      this.#lastWrite = this.#now() - age;
      this.#follow(this.ttlMs - age + 20);
      return;
    }
    // DEL or PURGE: the holder let go.
    if (this.#leader) {
      if (e.revision > this.#revision) this.#stepDown('lease deleted', false);
      return;
    }
    this.#holder = null;
    void this.#tryAcquire();
  }
}
