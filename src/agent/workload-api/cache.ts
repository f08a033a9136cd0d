import { createHash } from 'node:crypto';

/** How many workloads' SVIDs tbot keeps: beyond it, the least recently used entry goes. */
export const SVID_CACHE_ENTRIES = 4096;

/** The canonical JSON of a value (object keys sorted), for cache keys. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object')
    return `{${Object.keys(value)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(value);
}

/** The cache key of one request: what was asked (kind, selector, audiences) for which attested workload. */
export function cacheKey(parts: Record<string, unknown>): string {
  return createHash('sha256').update(canonical(parts)).digest('hex');
}

interface Entry<T> {
  value: T;
  /** Reused until then (ms since the epoch): half its life, so that a renewal is never late. */
  freshUntil: number;
}

/**
 * SVIDs by workload key, reused while more than half their life is left; bounded (LRU). Two
 * requests for one key at the same time share one call to the Auth Service. `clear()` (a CA
 * rotation) drops everything: the next request is issued by the new CA.
 */
export class SvidCache<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private readonly pending = new Map<string, Promise<T>>();
  private generation = 0;

  constructor(
    private readonly max = SVID_CACHE_ENTRIES,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** The cached value for `key`, or `issue()`'s, cached until the middle of [now, expiresAt(value)]. */
  async get(key: string, issue: () => Promise<T>, expiresAt: (v: T) => number): Promise<T> {
    const hit = this.entries.get(key);
    if (hit && hit.freshUntil > this.now()) {
      // most recently used last
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit.value;
    }
    const inFlight = this.pending.get(key);
    if (inFlight) return inFlight;
    const gen = this.generation;
    const start = this.now();
    const p = issue().then(
      (value) => {
        this.pending.delete(key);
        // (an answer that a clear() overtook is not kept: it may be the old CA's)
        if (gen === this.generation) {
          this.entries.delete(key);
          this.entries.set(key, { value, freshUntil: start + (expiresAt(value) - start) / 2 });
          while (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value!);
        }
        return value;
      },
      (err: unknown) => {
        this.pending.delete(key);
        throw err;
      },
    );
    this.pending.set(key, p);
    return p;
  }

  clear(): void {
    this.generation++;
    this.entries.clear();
    this.pending.clear();
  }
}

/** How long a refusal (PermissionDenied from the Auth Service) is answered again without asking it. */
export const REFUSAL_TTL_MS = 5000;
/** At most this many refusals per uid per REFUSAL_TTL_MS go to the Auth Service; beyond, Unavailable. */
export const REFUSALS_PER_UID = 10;

/**
 * Refusals kept briefly per request key (the selector, the request and the attested attributes),
 * and counted per uid: a workload no rule allows, asking in a loop (or from many processes, each
 * a new set of attributes), costs the Auth Service a few round trips every 5 seconds, not one per
 * call. The key of a refusal is the same key an SVID would be cached under.
 */
export class RefusalCache {
  private readonly entries = new Map<string, { until: number; err: unknown }>();
  private readonly perUid = new Map<number, number[]>();

  constructor(
    private readonly ttlMs = REFUSAL_TTL_MS,
    private readonly perUidMax = REFUSALS_PER_UID,
    private readonly isRefusal: (err: unknown) => boolean,
    private readonly now = () => Date.now(),
  ) {}

  /** `fn()`, unless this key was refused within the TTL (the same error again) or its uid is over its count. */
  async run<T>(key: string, uid: number, fn: () => Promise<T>, tooMany: () => Error): Promise<T> {
    const now = this.now();
    const hit = this.entries.get(key);
    if (hit && hit.until > now) throw hit.err;
    const recent = (this.perUid.get(uid) ?? []).filter((t) => t > now - this.ttlMs);
    if (recent.length >= this.perUidMax) throw tooMany();
    try {
      return await fn();
    } catch (err) {
      if (this.isRefusal(err)) {
        this.entries.delete(key);
        this.entries.set(key, { until: now + this.ttlMs, err });
        if (this.entries.size > SVID_CACHE_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
        recent.push(now);
        this.perUid.set(uid, recent);
        if (this.perUid.size > SVID_CACHE_ENTRIES) this.perUid.delete(this.perUid.keys().next().value!);
      }
      throw err;
    }
  }
}
