export interface SchedulerLimits {
  /** URLs in progress at once, over all hosts. */
  global: number;
  /** Requests in flight to one host at once. */
  perHost: number;
  /** Least time between two request starts on one host. */
  delayMs: number;
}

interface Host {
  readonly name: string;
  active: number;
  /** Redirect hops waiting for a slot on this host; they go before new URLs. */
  readonly waiters: Array<() => void>;
  /** This host's URLs (first hop here) are `order[cursor..end)`. */
  cursor: number;
  end: number;
  nextAt: number;
  timer: NodeJS.Timeout | undefined;
  inReady: boolean;
}

/**
 * Decides which request may start when. Two limits hold at every moment: at most `perHost` requests in flight per
 * host name, started at least `delayMs` apart, and at most `global` URLs in progress. A URL holds one global slot
 * from its first request to its result, and a host slot only while one of its requests is in flight: a redirect to
 * another host gives up the first host's slot before it queues for the next one, so two hosts redirecting to each
 * other cannot deadlock.
 *
 * New URLs are taken host by host in turn from a queue of hosts that could start one, so a host with 10,000 URLs
 * does not hold back the host with ten, and picking the next request costs O(1) whatever the number of hosts.
 */
export class HostScheduler {
  private readonly limits: SchedulerLimits;
  private readonly hosts = new Map<string, Host>();
  private readonly order: Int32Array;
  private readonly ready: Host[] = [];
  private readyHead = 0;
  private globalActive = 0;
  private stopped = false;
  private readonly startUrl: (u: number) => void;

  /**
   * @param order URL indexes grouped by first host: host `h`'s URLs are `order[starts[h]..starts[h + 1])`.
   * @param startUrl called with a URL whose first request may start now (its global and host slots are taken).
   */
  constructor(
    limits: SchedulerLimits,
    hostNames: readonly string[],
    order: Int32Array,
    starts: Int32Array,
    startUrl: (u: number) => void,
  ) {
    this.limits = limits;
    this.order = order;
    this.startUrl = startUrl;
    hostNames.forEach((name, h) => {
      this.hosts.set(name, this.host(name, starts[h]!, starts[h + 1]!));
    });
  }

  private host(name: string, cursor = 0, end = 0): Host {
    return { name, active: 0, waiters: [], cursor, end, nextAt: 0, timer: undefined, inReady: false };
  }

  /** Starts as many URLs as the limits allow; the rest start as slots free up. */
  start(): void {
    for (const h of this.hosts.values()) if (h.cursor < h.end) this.enqueue(h);
    this.pump();
  }

  /**
   * A slot on `name` for a further request of a URL already in progress (a redirect hop). Returns undefined when the
   * slot was free and is now taken, else a promise that resolves once it is.
   */
  acquire(name: string): Promise<void> | undefined {
    let h = this.hosts.get(name);
    if (!h) {
      h = this.host(name);
      this.hosts.set(name, h);
    }
    const now = performance.now();
    if (h.active < this.limits.perHost && h.waiters.length === 0 && h.nextAt <= now) {
      h.active++;
      h.nextAt = now + this.limits.delayMs;
      return undefined;
    }
    return new Promise((resolve) => {
      h.waiters.push(resolve);
      // Only the per-host delay may stand in the way: drain sets the timer for it.
      this.drain(h);
    });
  }

  /** Gives back a host slot taken by `startUrl` or {@link acquire}. */
  release(name: string): void {
    const h = this.hosts.get(name)!;
    h.active--;
    this.drain(h);
    this.pump();
  }

  /** Gives back a URL's global slot: its result is in. */
  finish(): void {
    this.globalActive--;
    this.pump();
  }

  /** Stops starting anything; pending timers are cleared. */
  stop(): void {
    this.stopped = true;
    for (const h of this.hosts.values()) clearTimeout(h.timer);
  }

  private enqueue(h: Host): void {
    if (h.inReady) return;
    h.inReady = true;
    this.ready.push(h);
  }

  private pump(): void {
    while (!this.stopped && this.globalActive < this.limits.global && this.readyHead < this.ready.length) {
      const h = this.ready[this.readyHead++]!;
      h.inReady = false;
      this.drain(h);
      if (this.readyHead > 1024 && this.readyHead * 2 > this.ready.length) {
        this.ready.splice(0, this.readyHead);
        this.readyHead = 0;
      }
    }
  }

  /** Starts what host `h` may start now: waiting hops first, then new URLs while global slots last. */
  private drain(h: Host): void {
    while (!this.stopped && h.active < this.limits.perHost) {
      const hasWaiter = h.waiters.length > 0;
      const hasUrl = h.cursor < h.end;
      if (!hasWaiter && !hasUrl) return;
      if (!hasWaiter && this.globalActive >= this.limits.global) {
        this.enqueue(h);
        return;
      }
      const now = performance.now();
      if (h.nextAt > now) {
        h.timer ??= setTimeout(() => {
          h.timer = undefined;
          this.drain(h);
          this.pump();
        }, h.nextAt - now);
        return;
      }
      h.active++;
      h.nextAt = now + this.limits.delayMs;
      if (hasWaiter) {
        h.waiters.shift()!();
        continue;
      }
      this.globalActive++;
      const u = this.order[h.cursor++]!;
      // Round robin: after one new URL the host goes to the back of the queue.
      if (h.cursor < h.end && h.active < this.limits.perHost) {
        this.enqueue(h);
        this.startUrl(u);
        return;
      }
      this.startUrl(u);
    }
  }
}
