import { isIPv4 } from 'node:net';
import { ipv6Groups } from '../util/ip.js';

/** One token bucket: `average` requests per `periodMs` sustained, `burst` at once (Teleport's `rates` entry). */
export interface Rate {
  periodMs: number;
  average: number;
  burst: number;
}

/**
 * mwi.yaml `connection_limits`, as Teleport names them: `max_connections` concurrent connections
 * per source (0: no limit) and `rates`, the token buckets every request but an administrator's
 * draws on: an unlocked bot's on its instance's own, anyone else's on its source address's (empty:
 * no rate limit). Per Auth Service process: with `--workers N`, per worker.
 */
export interface ConnectionLimits {
  maxConnections: number;
  rates: Rate[];
}

/**
 * Defaults: generous for tbot (a join is one or two requests per bot start, a renewal cycle a few
 * per instance) and far below what a flood of challenges or joins would need.
 */
export const DEFAULT_CONNECTION_LIMITS: Readonly<ConnectionLimits> = Object.freeze({
  maxConnections: 1000,
  rates: [{ periodMs: 60_000, average: 600, burst: 200 }],
});

/** Sources remembered at most: a flood from many addresses costs bounded memory. */
const MAX_TRACKED_SOURCES = 10_000;

/**
 * The key a source is limited under: an IPv4 address as it is (IPv4-mapped IPv6 included), an
 * IPv6 address by its /64 (one host is routinely given a whole /64: limiting single addresses
 * would let it rotate through 2^64 of them).
 */
export function sourceKey(remote: string): string {
  if (isIPv4(remote)) return remote;
  const g = ipv6Groups(remote);
  if (!g) return remote;
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff)
    return `${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}`;
  return `${g
    .slice(0, 4)
    .map((x) => x.toString(16))
    .join(':')}::/64`;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Token buckets per source. `take` is O(rates) and allocates only for a new source. The number of
 * sources kept is capped, and a source is forgotten only when forgetting it gives nothing away:
 * its buckets have refilled (a full bucket is what a new source gets anyway). When the table is
 * full of sources still drawing on their buckets (a flood from many addresses: an IPv6 /48 holds
 * 65,536 /64s), new sources share one overflow set of buckets instead of each getting a fresh
 * burst, so cycling through more addresses than the table holds buys nothing.
 */
export class RateLimiter {
  /** In recency order: a touched source moves last, so the first is the least recently seen. */
  private readonly sources = new Map<string, Bucket[]>();
  private readonly overflow: Bucket[];

  constructor(
    private readonly rates: readonly Rate[],
    private readonly now: () => number = Date.now,
    private readonly maxSources = MAX_TRACKED_SOURCES,
  ) {
    this.overflow = this.fresh(now());
  }

  /** Sources currently remembered. */
  get tracked(): number {
    return this.sources.size;
  }

  private fresh(t: number): Bucket[] {
    return this.rates.map((r) => ({ tokens: r.burst, at: t }));
  }

  /** Refills `buckets` to time `t`; true if every one is full again. */
  private refill(buckets: Bucket[], t: number): boolean {
    let full = true;
    this.rates.forEach((r, i) => {
      const b = buckets[i]!;
      b.tokens = Math.min(r.burst, b.tokens + ((t - b.at) * r.average) / r.periodMs);
      b.at = t;
      if (b.tokens < r.burst) full = false;
    });
    return full;
  }

  /** The buckets `key` draws on now (see the class comment for a full table). */
  private bucketsOf(key: string, t: number): Bucket[] {
    const known = this.sources.get(key);
    if (known) {
      this.sources.delete(key);
      this.sources.set(key, known);
      return known;
    }
    if (this.sources.size >= this.maxSources) {
      const [oldestKey, oldest] = this.sources.entries().next().value as [string, Bucket[]];
      if (!this.refill(oldest, t)) return this.overflow;
      this.sources.delete(oldestKey);
    }
    const made = this.fresh(t);
    this.sources.set(key, made);
    return made;
  }

  /**
   * Takes one token from each of the source's buckets: 0 if the request may go on, otherwise the
   * milliseconds until every bucket has a token again (nothing is taken then).
   */
  take(key: string): number {
    if (this.rates.length === 0) return 0;
    const t = this.now();
    const buckets = this.bucketsOf(key, t);
    this.refill(buckets, t);
    let waitMs = 0;
    this.rates.forEach((r, i) => {
      const b = buckets[i]!;
      // (the epsilon keeps float error from adding a millisecond)
      if (b.tokens < 1) waitMs = Math.max(waitMs, Math.ceil(((1 - b.tokens) * r.periodMs) / r.average - 1e-9));
    });
    if (waitMs > 0) return waitMs;
    for (const b of buckets) b.tokens -= 1;
    return 0;
  }
}

/** Open connections per source, for `max_connections`; a source's entry lives while it has one open. */
export class ConnectionCounter {
  private readonly open = new Map<string, number>();

  constructor(private readonly max: number) {}

  /** True (and counted) if the source may open one more connection; release it when it closes. */
  acquire(key: string): boolean {
    if (this.max <= 0) return true;
    const n = this.open.get(key) ?? 0;
    if (n >= this.max) return false;
    this.open.set(key, n + 1);
    return true;
  }

  release(key: string): void {
    if (this.max <= 0) return;
    const n = (this.open.get(key) ?? 1) - 1;
    if (n <= 0) this.open.delete(key);
    else this.open.set(key, n);
  }
}

/**
 * Counts refusals and logs them as one summary line per period at most: a flood of refused
 * requests must not become a flood of log (or audit) lines.
 */
export class RefusalSummary {
  private count = 0;
  private readonly sources = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private last = -Infinity;

  constructor(
    private readonly periodMs: number,
    private readonly report: (count: number, sources: number, example: string) => void,
    private readonly now: () => number = Date.now,
  ) {}

  add(source: string): void {
    this.count++;
    if (this.sources.size < 1000) this.sources.add(source);
    if (this.timer) return;
    const due = Math.max(0, this.last + this.periodMs - this.now());
    this.timer = setTimeout(() => this.flush(), due).unref();
  }

  /** Reports what was counted since the last report (also on close). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.count === 0) return;
    this.report(this.count, this.sources.size, this.sources.values().next().value!);
    this.last = this.now();
    this.count = 0;
    this.sources.clear();
  }
}
