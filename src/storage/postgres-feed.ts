import type pg from 'pg';
import type { Item, WatchEvent } from './backend.js';
import type { PgTarget } from './postgres-url.js';
import { Watchers } from './watchers.js';

/** How often a replica looks for the changes other replicas made (the delay it adds, at most). */
export const POLL_MS = 100;
/** Most changes one poll reads; more are read by the next poll at once. */
const POLL_ROWS = 5000;

interface ChangeRow {
  pruned: number;
  /** The revision counter now: below what this replica has read, the database went back in time. */
  current: number;
  revision: number | null;
  key: string | null;
  deleted: boolean | null;
  value: string | null;
  krev: number | null;
  expires: number | null;
}

/**
 * The change feed of the PostgreSQL backend, as SQLite's `--workers` have it: every write is also
 * a row of the change log (mwi_changes), numbered by the global revision, and each replica polls
 * the log for revisions past the last one it delivered. Revisions are given in commit order (a
 * writer holds the counter's row lock until it commits), so the log has no late arrivals behind
 * a revision already read. This replica's own writes are delivered when they commit and skipped
 * in the log. A replica that was cut off for longer than the log keeps changes (the `pruned` mark
 * passed the last revision it read) reads every watched prefix again instead: a put for each item
 * and a delete for each key it had reported that is gone; so does a replica that finds the counter
 * below what it read (a failover to a standby that had not received the last commits, or a restore:
 * the lost revisions are given again to other changes, which polling past them would miss).
 *
 * No change is delivered over a newer one for the same key. A change of this replica reaches the
 * watchers when it commits, while the poll may still read an older change of another replica for
 * that key (committed before, read late, or read in a snapshot taken before this commit): `latest`
 * keeps the revision last delivered per key for as long as an older change can still arrive.
 */
export class PostgresFeed {
  private readonly watchers = new Watchers();
  private readonly prefixes = new Map<string, number>();
  /** Keys under a watched prefix that this replica has reported or read: what a resync may delete. */
  private readonly known = new Set<string>();
  /** Revisions this replica wrote and delivered itself (skipped when the log shows them). */
  private readonly mine = new Set<number>();
  /** Revisions this replica is committing (claimed, neither delivered nor unclaimed yet). */
  private readonly inflight = new Set<number>();
  /** The revision last delivered per key, while an older change for it may still arrive (prune). */
  private readonly latest = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly target: PgTarget,
    /** Highest revision already delivered (the counter when the backend opened). */
    private seen: number,
    private readonly rangeAll: (prefix: string) => Promise<Item[]>,
  ) {}

  add(prefix: string, fn: (e: WatchEvent) => void): () => void {
    this.prefixes.set(prefix, (this.prefixes.get(prefix) ?? 0) + 1);
    if (!this.timer && !this.closed) this.schedule();
    const stop = this.watchers.add(prefix, fn);
    return () => {
      stop();
      const n = (this.prefixes.get(prefix) ?? 1) - 1;
      if (n > 0) this.prefixes.set(prefix, n);
      else this.prefixes.delete(prefix);
    };
  }

  private watched(key: string): boolean {
    for (const p of this.prefixes.keys()) if (key.startsWith(p)) return true;
    return false;
  }

  /** A key read from storage: a resync must report it gone if it was deleted meanwhile. */
  saw(key: string): void {
    if (this.prefixes.size > 0 && this.watched(key)) this.known.add(key);
  }

  /** Revisions this replica is about to commit: the poll leaves them to `delivered`. */
  claim(revisions: number[]): void {
    for (const r of revisions) {
      this.inflight.add(r);
      if (this.timer) this.mine.add(r);
    }
  }

  /** Not committed (or not known to be): the poll delivers them if they are in the log. */
  unclaim(revisions: number[]): void {
    for (const r of revisions) {
      this.mine.delete(r);
      this.inflight.delete(r);
    }
  }

  /** This replica's own committed changes, delivered at once. */
  delivered(changes: Array<{ event: WatchEvent; revision: number }>): void {
    for (const c of changes) {
      this.inflight.delete(c.revision);
      this.emit(c.event, c.revision);
    }
  }

  /** Delivers a change unless one with a higher revision was delivered for its key. */
  private emit(e: WatchEvent, revision: number): void {
    const k = e.type === 'put' ? e.item.key : e.key;
    const last = this.latest.get(k);
    if (last !== undefined && last >= revision) return;
    this.latest.set(k, revision);
    if (e.type === 'put') this.saw(k);
    else this.known.delete(k);
    this.watchers.emit(e);
  }

  /**
   * Forgets the revisions no change can arrive below any more: the poll reads changes past
   * `seen` only, and this replica's commits in flight are at or above the lowest of them.
   */
  private prune(): void {
    let floor = this.seen;
    for (const r of this.inflight) if (r < floor) floor = r;
    for (const [k, r] of this.latest) if (r <= floor) this.latest.delete(k);
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      void this.poll().finally(() => {
        if (!this.closed) this.schedule();
      });
    }, POLL_MS);
    this.timer.unref();
  }

  /**
   * Delivers the changes since the last poll. A failed poll (the database is down) changes
   * nothing: the next one takes up from the same revision, so nothing is missed while the
   * change log still holds it.
   */
  async poll(): Promise<void> {
    try {
      for (;;) {
        const { rows } = await this.pool.query<ChangeRow>(
          `SELECT p.value AS pruned, (SELECT value FROM mwi_counters WHERE name = 'revision') AS current,
             c.revision, c.key, c.deleted, k.value, k.revision AS krev, k.expires
           FROM mwi_counters p
           LEFT JOIN (mwi_changes c LEFT JOIN mwi_kv k ON k.key = c.key) ON c.revision > $1
           WHERE p.name = 'pruned' ORDER BY c.revision LIMIT $2`,
          [this.seen, POLL_ROWS],
        );
        if ((rows[0]?.current ?? this.seen) < this.seen) return await this.resync(true);
        if ((rows[0]?.pruned ?? 0) > this.seen) return await this.resync(false);
        for (const c of rows) {
          if (c.revision === null || c.key === null || this.closed) continue;
          this.seen = c.revision;
          if (this.mine.delete(c.revision)) continue;
          // a delete the key was written again after is not delivered: the later put is, or was
          if (c.deleted) {
            if (c.krev === null || c.krev < c.revision) this.emit({ type: 'delete', key: c.key }, c.revision);
          } else if (c.krev === c.revision && c.value !== null)
            this.emit(
              { type: 'put', item: { key: c.key, value: c.value, revision: c.krev, expires: c.expires ?? undefined } },
              c.revision,
            );
        }
        this.prune();
        if (rows.length < POLL_ROWS) return;
      }
    } catch {
      // unreachable database: the next poll retries (readiness and requests report the outage)
    }
  }

  /**
   * Reads every watched prefix again (see the class comment). After the counter went back
   * (`rewound`), the revisions remembered are those of a history the database no longer has: they
   * are forgotten, except those of this replica's commits in flight, which belong to the new one.
   */
  private async resync(rewound: boolean): Promise<void> {
    const { rows } = await this.pool.query<{ value: number }>("SELECT value FROM mwi_counters WHERE name = 'revision'");
    const at = rows[0]?.value ?? this.seen;
    if (rewound) {
      this.latest.clear();
      for (const r of this.mine) if (!this.inflight.has(r)) this.mine.delete(r);
    }
    const now = new Map<string, Item>();
    for (const prefix of [...this.prefixes.keys()])
      for (const item of await this.rangeAll(prefix)) now.set(item.key, item);
    for (const k of [...this.known]) if (!now.has(k)) this.emit({ type: 'delete', key: k }, at);
    for (const item of now.values()) this.emit({ type: 'put', item }, item.revision);
    for (const r of this.mine) if (r <= at) this.mine.delete(r);
    this.seen = at;
    this.prune();
  }

  /** The database this feed reads, for messages. */
  get display(): string {
    return this.target.display;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }
}
