import type pg from 'pg';
import { MwiError } from '../errors.js';
import type { Backend, Item, RangeOptions, TxOp, WatchEvent, WriteOptions } from './backend.js';
import { bools, int, ints, isConnectionError, isRetryable, openPool, storageError, texts } from './postgres-pool.js';
import { LOCK_CLASS, LOCKS, migrate } from './postgres-schema.js';
import { parsePostgresUrl, type PgTarget } from './postgres-url.js';
import { PostgresFeed } from './postgres-feed.js';

/** Most writes one transaction takes; the rest go into the next. */
const MAX_BATCH = 512;
/** Rows one purge step deletes. */
export const PG_PURGE_BATCH = 500;
/** How long the change log keeps a change (a replica cut off for longer resynchronises). */
export const CHANGES_KEPT_MS = 10 * 60 * 1000;
/** Attempts for a batch that hit a serialization failure, a deadlock or a dead pooled connection. */
const ATTEMPTS = 3;

type Write =
  | { kind: 'put'; key: string; value: string; expires: number | undefined }
  | { kind: 'create'; key: string; value: string; expires: number | undefined }
  | { kind: 'cas'; key: string; revision: number; value: string; expires: number | undefined }
  | { kind: 'delete'; key: string; revision: number | undefined }
  | { kind: 'tx'; ops: TxOp[] };

interface Pending {
  write: Write;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

interface Row {
  key: string;
  value: string;
  revision: number;
  expires: number | null;
}

function toItem(r: Row): Item {
  return { key: r.key, value: r.value, revision: r.revision, expires: r.expires ?? undefined };
}

/** The keys a write reads. */
function keysOf(w: Write): string[] {
  return w.kind === 'tx' ? w.ops.map((o) => o.key) : [w.key];
}

/**
 * PostgreSQL's text cannot hold U+0000; one in a batch would fail every write (or read) sharing
 * its statement. mwi's keys are checked names and its values JSON (which escapes it), so this is
 * a programming error, refused for the one request that carries it.
 */
function nul(...texts: Array<string | undefined>): MwiError | undefined {
  return texts.some((t) => t?.includes('\u0000'))
    ? new MwiError('INTERNAL', 'a NUL character cannot be stored in PostgreSQL')
    : undefined;
}

/**
 * PostgreSQL backend, for several Auth Service replicas sharing one database.
 *
 * Every write transaction first locks the revision counter's row: writes are serialized across
 * all replicas (as SQLite's one writer serializes its processes), revisions rise in commit order,
 * and inside the transaction nothing else can change. Each write's condition (absent for create,
 * same revision for compareAndSwap and delete, all of them for transact) is checked against the
 * rows read after that lock, so a single-use token is consumed once however many replicas try.
 * Writes issued while a transaction runs share the next one (group commit): one round trip reads
 * every key they touch, one writes every row and change-log entry. A refused condition changes
 * nothing and does not affect the others; a storage error fails every write of the batch.
 */
export class PostgresBackend implements Backend {
  private queue: Pending[] = [];
  private gets = new Map<string, Array<{ resolve: (i: Item | undefined) => void; reject: (e: unknown) => void }>>();
  private flushing: Promise<void> | undefined;
  private closed = false;
  private purging: Promise<unknown> = Promise.resolve();
  private readonly feed: PostgresFeed;

  private constructor(
    readonly pool: pg.Pool,
    readonly target: PgTarget,
    private readonly now: () => number,
    startRevision: number,
  ) {
    this.feed = new PostgresFeed(pool, target, startRevision, (prefix) => this.range(prefix));
  }

  /** Connects, migrates the schema (safe with replicas starting at once) and resolves when it can answer. */
  static async open(spec: string, now: () => number = Date.now): Promise<PostgresBackend> {
    const target = parsePostgresUrl(spec);
    const pool = await openPool(target);
    try {
      await migrate(pool);
      const { rows } = await pool.query<{ value: number }>("SELECT value FROM mwi_counters WHERE name = 'revision'");
      return new PostgresBackend(pool, target, now, rows[0]?.value ?? 0);
    } catch (err) {
      await pool.end().catch(() => {});
      throw storageError(err, target, 'storage', true);
    }
  }

  /** A query on a pooled connection; `name` makes it a prepared statement (parsed once per connection). */
  private async read<R extends pg.QueryResultRow>(text: string, values: unknown[], name?: string): Promise<R[]> {
    if (this.closed) throw new MwiError('STORAGE', 'storage is closed');
    try {
      return (await this.pool.query<R>({ text, values, ...(name ? { name } : {}) })).rows;
    } catch (err) {
      throw storageError(err, this.target);
    }
  }

  /**
   * Reads issued in the same turn of the event loop share one query (one round trip and one
   * statement for the server however many requests read at once).
   */
  get(key: string): Promise<Item | undefined> {
    if (this.closed) return Promise.reject(new MwiError('STORAGE', 'storage is closed'));
    const bad = nul(key);
    if (bad) return Promise.reject(bad);
    return new Promise((resolve, reject) => {
      if (this.gets.size === 0) setImmediate(() => void this.readGets());
      const waiting = this.gets.get(key);
      if (waiting) waiting.push({ resolve, reject });
      else this.gets.set(key, [{ resolve, reject }]);
    });
  }

  private async readGets(): Promise<void> {
    const gets = this.gets;
    this.gets = new Map();
    try {
      const rows = await this.read<Row>(
        'SELECT key, value, revision, expires FROM mwi_kv WHERE key = ANY($1::text[]) ' +
          'AND (expires IS NULL OR expires > $2)',
        [[...gets.keys()], this.now()],
        'mwi_get',
      );
      const found = new Map(rows.map((r) => [r.key, r]));
      for (const [key, waiting] of gets) {
        const row = found.get(key);
        if (row) this.feed.saw(key);
        for (const w of waiting) w.resolve(row && toItem(row));
      }
    } catch (err) {
      for (const waiting of gets.values()) for (const w of waiting) w.reject(err);
    }
  }

  async range(prefix: string, opts: RangeOptions = {}): Promise<Item[]> {
    // keys are ASCII paths, so every key with the prefix sorts below prefix + U+FFFF
    const rows = await this.read<Row>(
      'SELECT key, value, revision, expires FROM mwi_kv WHERE key >= $1 AND key < $2 AND key > $3 ' +
        'AND (expires IS NULL OR expires > $4) ORDER BY key LIMIT $5',
      [prefix, `${prefix}\uffff`, opts.startAfter ?? '', this.now(), opts.limit ?? null],
      'mwi_range',
    );
    for (const r of rows) this.feed.saw(r.key);
    return rows.map(toItem);
  }

  put(key: string, value: string, opts?: WriteOptions): Promise<Item> {
    return this.enqueue({ kind: 'put', key, value, expires: opts?.expires });
  }

  create(key: string, value: string, opts?: WriteOptions): Promise<Item> {
    return this.enqueue({ kind: 'create', key, value, expires: opts?.expires });
  }

  compareAndSwap(key: string, revision: number, value: string, opts?: WriteOptions): Promise<Item> {
    return this.enqueue({ kind: 'cas', key, revision, value, expires: opts?.expires });
  }

  delete(key: string, revision?: number): Promise<boolean> {
    return this.enqueue({ kind: 'delete', key, revision });
  }

  transact(ops: TxOp[]): Promise<boolean> {
    return this.enqueue({ kind: 'tx', ops });
  }

  watch(prefix: string, fn: (event: WatchEvent) => void): () => void {
    return this.feed.add(prefix, fn);
  }

  private enqueue<T>(write: Write): Promise<T> {
    if (this.closed) return Promise.reject(new MwiError('STORAGE', 'storage is closed'));
    const bad =
      write.kind === 'tx'
        ? nul(...write.ops.flatMap((o) => [o.key, o.op === 'delete' ? undefined : o.value]))
        : nul(write.key, write.kind === 'delete' ? undefined : write.value);
    if (bad) return Promise.reject(bad);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ write, resolve: resolve as (v: unknown) => void, reject });
      this.flushing ??= this.drain();
    });
  }

  /** One batch at a time: writes arriving meanwhile wait for the next (group commit). */
  private async drain(): Promise<void> {
    await new Promise<void>((r) => setImmediate(r));
    while (this.queue.length > 0) await this.runBatch(this.queue.splice(0, MAX_BATCH));
    this.flushing = undefined;
  }

  private async runBatch(batch: Pending[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      let committing: number[] | undefined;
      let client: pg.PoolClient | undefined;
      try {
        client = await this.pool.connect();
        const outcome = await this.apply(client, batch);
        // the poll must not deliver these too, even if it reads them before we do
        this.feed.claim((committing = outcome.revisions));
        await client.query(outcome.commit);
        client.release();
        this.feed.delivered(outcome.events);
        batch.forEach((p, i) => {
          const r = outcome.results[i]!;
          if (r.ok) p.resolve(r.out);
          else p.reject(r.err);
        });
        return;
      } catch (err) {
        // an error the server reported means nothing was committed; a broken connection, maybe
        if (committing && !isConnectionError(err)) committing = undefined;
        // if it did commit after all, the poll delivers it
        if (committing) this.feed.unclaim(committing);
        if (client) {
          await client.query('ROLLBACK').catch(() => {});
          // a broken connection is not given back to the pool
          client.release(isConnectionError(err) ? true : undefined);
        }
        // retried only when nothing can have been committed
        const again = !committing && attempt < ATTEMPTS && (isRetryable(err) || (client && isConnectionError(err)));
        if (again) {
          // apart, so that writers that collided do not collide again at once
          await new Promise((r) => setTimeout(r, 5 * 2 ** attempt * (1 + Math.random())));
          continue;
        }
        const failure = committing
          ? new MwiError(
              'STORAGE',
              `storage write outcome unknown: the connection to PostgreSQL at ${this.target.display} broke while ` +
                'committing',
              { cause: err },
            )
          : storageError(err, this.target);
        for (const p of batch) p.reject(failure);
        return;
      }
    }
  }

  /**
   * One transaction for the batch, in two round trips. The first begins it, locks the revision
   * counter and then (a statement of its own, so that it sees every transaction committed before
   * the lock was granted) reads every key the batch touches. Each write is decided against those
   * rows and the batch's own earlier writes; the second round trip writes the rows, the change
   * log and the counter in one statement and commits. The statements are sent as text (the simple
   * protocol, the only one that takes several statements at once), every value a quoted literal.
   */
  private async apply(client: pg.PoolClient, batch: Pending[]) {
    const now = this.now();
    const keys = [...new Set(batch.flatMap((p) => keysOf(p.write)))];
    // READ COMMITTED whatever the database's default: the counter's row lock orders the writers,
    // and the read after it must see every transaction committed before it was granted (under
    // REPEATABLE READ or SERIALIZABLE, taking that lock fails with 40001 under contention)
    const first = (await client.query(
      "BEGIN ISOLATION LEVEL READ COMMITTED; SELECT value FROM mwi_counters WHERE name = 'revision' FOR UPDATE; " +
        `SELECT key, revision FROM mwi_kv WHERE key = ANY(${texts(keys)}) ` +
        `AND (expires IS NULL OR expires > ${int(now)})`,
    )) as unknown as [
      pg.QueryResult,
      pg.QueryResult<{ value: number }>,
      pg.QueryResult<{ key: string; revision: number }>,
    ];
    const base = first[1].rows[0]!.value;
    const state = new Map(first[2].rows.map((r) => [r.key, r.revision]));
    let rev = base;
    const final = new Map<string, { value: string; revision: number; expires: number | undefined } | null>();
    const changes: Array<{ revision: number; key: string; deleted: boolean }> = [];
    const events: Array<{ event: WatchEvent; revision: number }> = [];
    const results: Array<{ ok: true; out: unknown } | { ok: false; err: unknown }> = [];
    const put = (key: string, value: string, expires: number | undefined): Item => {
      const item: Item = { key, value, revision: ++rev, expires };
      state.set(key, item.revision);
      final.set(key, { value, revision: item.revision, expires });
      changes.push({ revision: item.revision, key, deleted: false });
      events.push({ event: { type: 'put', item }, revision: item.revision });
      return item;
    };
    const remove = (key: string) => {
      state.delete(key);
      final.set(key, null);
      changes.push({ revision: ++rev, key, deleted: true });
      events.push({ event: { type: 'delete', key }, revision: rev });
    };
    for (const { write: w } of batch) {
      if (w.kind === 'put') results.push({ ok: true, out: put(w.key, w.value, w.expires) });
      else if (w.kind === 'create')
        results.push(
          state.has(w.key)
            ? { ok: false, err: new MwiError('ALREADY_EXISTS', `${w.key} already exists`) }
            : { ok: true, out: put(w.key, w.value, w.expires) },
        );
      else if (w.kind === 'cas')
        results.push(
          state.get(w.key) !== w.revision
            ? { ok: false, err: new MwiError('COMPARE_FAILED', `${w.key} changed concurrently`) }
            : { ok: true, out: put(w.key, w.value, w.expires) },
        );
      else if (w.kind === 'delete') {
        const ok = state.has(w.key) && (w.revision === undefined || state.get(w.key) === w.revision);
        if (ok) remove(w.key);
        results.push({ ok: true, out: ok });
      } else {
        const holds = w.ops.every((o) => (o.op === 'create' ? !state.has(o.key) : state.get(o.key) === o.revision));
        if (holds)
          for (const o of w.ops) {
            if (o.op === 'delete') remove(o.key);
            else put(o.key, o.value, o.expires);
          }
        results.push({ ok: true, out: holds });
      }
    }
    let commit = 'COMMIT';
    if (changes.length > 0) {
      const puts = [...final].filter((e): e is [string, NonNullable<(typeof e)[1]>] => e[1] !== null);
      const dels = [...final].filter(([, v]) => v === null).map(([k]) => k);
      commit =
        'WITH up AS (INSERT INTO mwi_kv (key, value, revision, expires) SELECT * FROM unnest(' +
        `${texts(puts.map(([k]) => k))}, ${texts(puts.map(([, v]) => v.value))}, ` +
        `${ints(puts.map(([, v]) => v.revision))}, ${ints(puts.map(([, v]) => v.expires))}) ` +
        'ON CONFLICT (key) DO UPDATE SET value = excluded.value, revision = excluded.revision, ' +
        'expires = excluded.expires RETURNING 1), ' +
        `del AS (DELETE FROM mwi_kv WHERE key = ANY(${texts(dels)}) RETURNING 1), ` +
        `ch AS (INSERT INTO mwi_changes (revision, key, deleted, at) SELECT r, k, d, ${int(now)} FROM unnest(` +
        `${ints(changes.map((c) => c.revision))}, ${texts(changes.map((c) => c.key))}, ` +
        `${bools(changes.map((c) => c.deleted))}) AS u(r, k, d) RETURNING 1) ` +
        `UPDATE mwi_counters SET value = ${int(rev)} WHERE name = 'revision'; COMMIT`;
    }
    return { results, events, revisions: changes.map((c) => c.revision), commit };
  }

  /**
   * Removes expired rows and old change-log entries, in batches of PG_PURGE_BATCH, each its own
   * short transaction. One replica at a time (an advisory lock; a replica that finds it taken
   * leaves the work to the holder and resolves to 0), and one call at a time in this process.
   */
  purgeExpired(signal?: AbortSignal): Promise<number> {
    const run = this.purging.then(() => this.purgeOnce(signal));
    this.purging = run.catch(() => {});
    return run;
  }

  private async purgeOnce(signal: AbortSignal | undefined): Promise<number> {
    if (signal?.aborted || this.closed) return 0;
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw storageError(err, this.target, 'purge');
    }
    let broken = false;
    try {
      const got = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [
        LOCK_CLASS,
        LOCKS.purge,
      ]);
      if (!got.rows[0]?.ok) return 0;
      try {
        const stop = () => signal?.aborted || this.closed;
        const cutoff = this.now() - CHANGES_KEPT_MS;
        // the pruned mark tells a replica that fell behind that the log no longer covers its gap
        for (let n = PG_PURGE_BATCH; n === PG_PURGE_BATCH && !stop();) {
          const r = await client.query<{ n: number }>(
            `WITH d AS (DELETE FROM mwi_changes WHERE revision IN
                (SELECT revision FROM mwi_changes WHERE at < $1 ORDER BY revision LIMIT $2) RETURNING revision)
             UPDATE mwi_counters SET value = GREATEST(value, (SELECT MAX(revision) FROM d))
             WHERE name = 'pruned' AND EXISTS (SELECT 1 FROM d) RETURNING (SELECT COUNT(*) FROM d)::int AS n`,
            [cutoff, PG_PURGE_BATCH],
          );
          n = r.rows[0]?.n ?? 0;
          await new Promise<void>((res) => setImmediate(res));
        }
        let removed = 0;
        while (!stop()) {
          // the condition is on the deleted row itself: a row made live again meanwhile is kept
          const r = await client.query(
            'DELETE FROM mwi_kv WHERE key = ANY(ARRAY(SELECT key FROM mwi_kv WHERE expires IS NOT NULL AND ' +
              'expires <= $1 LIMIT $2)) AND expires IS NOT NULL AND expires <= $1',
            [this.now(), PG_PURGE_BATCH],
          );
          removed += r.rowCount ?? 0;
          if ((r.rowCount ?? 0) < PG_PURGE_BATCH) break;
          await new Promise<void>((res) => setImmediate(res));
        }
        return removed;
      } finally {
        await client.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_CLASS, LOCKS.purge]);
      }
    } catch (err) {
      broken = true;
      throw storageError(err, this.target, 'purge');
    } finally {
      client.release(broken || undefined);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.feed.close();
    // writes already accepted are committed, not dropped
    while (this.flushing) await this.flushing;
    this.closed = true;
    await this.purging;
    await this.pool.end();
  }
}
