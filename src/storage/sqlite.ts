import Database from 'better-sqlite3';
import { chmodSync } from 'node:fs';
import type { Worker } from 'node:worker_threads';
import type { CheckpointerData, CheckpointerMessage, OwnerMessage } from './checkpointer.js';
import { isMwiError, MwiError } from '../errors.js';
import type { Backend, Item, RangeOptions, TxOp, WatchEvent, WriteOptions } from './backend.js';
import { Watchers } from './watchers.js';
import { sqliteAddonPath, sqliteOptions, startWorker } from '../util/native.js';

/** Schema migrations, applied in order; PRAGMA user_version records how many ran. */
const MIGRATIONS: string[] = [
  `CREATE TABLE kv (
     key TEXT PRIMARY KEY,
     value TEXT NOT NULL,
     revision INTEGER NOT NULL,
     expires INTEGER
   ) WITHOUT ROWID;
   CREATE INDEX kv_expires ON kv(expires) WHERE expires IS NOT NULL;
   CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
   INSERT INTO counters VALUES ('revision', 0);`,
  // every write and delete, so watchers in other processes sharing the file see them
  `CREATE TABLE changes (revision INTEGER PRIMARY KEY, key TEXT NOT NULL, ` +
    `deleted INTEGER NOT NULL, at INTEGER NOT NULL);`,
];

/** How often watchers look for other processes' changes, and how long changes are kept. */
const POLL_MS = 100;
const CHANGES_KEPT_MS = 10 * 60 * 1000;
/** WAL checkpoints: how often the worker thread runs one, and SQLite's own default threshold. */
const CHECKPOINT_MS = 250;
const AUTO_CHECKPOINT_PAGES = 1000;
/** How often the worker looks at the WAL's size, and how long a TRUNCATE may hold writers. */
const WAL_CHECK_MS = 50;
const TRUNCATE_WAIT_MS = 200;
/** Longest the checkpointer may hold this process's writes back (if it never says `release`). */
const HOLD_MAX_MS = 1000;
/**
 * The size the WAL file stays under. Finding 6 of issue #9: a flood of writes grew it by hundreds
 * of MB because PASSIVE checkpoints never let it restart. At a quarter of it the checkpointer
 * resets the file (TRUNCATE checkpoint), leaving room for what a flood commits meanwhile; a log
 * restarted by a writer is cut back to that quarter too (journal_size_limit).
 */
export const WAL_MAX_BYTES = 16 * 1024 * 1024;
const WAL_TRUNCATE_BYTES = WAL_MAX_BYTES / 4;
/** WAL size past which the checkpointer retries a busy TRUNCATE at once, backoff or not. */
const WAL_FORCE_BYTES = WAL_MAX_BYTES / 2;
/** Rows one purge step deletes before it lets other work run. */
export const PURGE_BATCH = 250;
/** Most writes one group commit takes; the rest go into the next. */
const MAX_BATCH = 256;

interface Row {
  key: string;
  value: string;
  revision: number;
  expires: number | null;
}

function toItem(row: Row): Item {
  return { key: row.key, value: row.value, revision: row.revision, expires: row.expires ?? undefined };
}

/**
 * SQLite backend: one file, WAL mode. Writes run in IMMEDIATE transactions so conditional writes
 * are atomic even when two processes open the same file.
 */
export class SqliteBackend implements Backend {
  private readonly db: Database.Database;
  private readonly watchers = new Watchers();
  private readonly stmts;
  /** Highest change revision already delivered to watchers. */
  private seen: number;
  private poller: NodeJS.Timeout | undefined;
  /** Revisions this process wrote (and already told its watchers about), while polling. */
  private readonly mine = new Set<number>();
  private checkpointer: Worker | undefined;
  /** Set while the checkpointer truncates the WAL: writes queue up instead of taking the lock. */
  private writesHeld: NodeJS.Timeout | undefined;
  private closing = false;
  /** Writes waiting for the next group commit. */
  private batch: Array<{
    run: () => { out: unknown; events: WatchEvent[] };
    resolve: (v: unknown) => void;
    reject: (e: unknown) => void;
  }> = [];
  /** Revisions written by the transaction in progress (added to `mine` only if it commits). */
  private written: number[] = [];

  constructor(
    path: string,
    private readonly now: () => number = Date.now,
  ) {
    // (a single executable's embedded addon; the npm module's own otherwise)
    this.db = new Database(path, sqliteOptions());
    // the database holds CA keys: owner-only (SQLite gives -wal/-shm the same mode)
    if (path !== ':memory:') chmodSync(path, 0o600);
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma(`journal_size_limit = ${WAL_TRUNCATE_BYTES}`);
    this.migrate();
    if (path !== ':memory:') this.startCheckpointer(path);
    this.stmts = {
      get: this.db.prepare<[string, number], Row>(
        'SELECT * FROM kv WHERE key = ? AND (expires IS NULL OR expires > ?)',
      ),
      bump: this.db.prepare<[], { value: number }>(
        `UPDATE counters SET value = value + 1 WHERE name = 'revision' RETURNING value`,
      ),
      upsert: this.db.prepare(
        'INSERT INTO kv (key, value, revision, expires) VALUES (?, ?, ?, ?) ' +
          'ON CONFLICT(key) DO UPDATE SET ' +
          'value = excluded.value, revision = excluded.revision, expires = excluded.expires',
      ),
      del: this.db.prepare<[string]>('DELETE FROM kv WHERE key = ?'),
      range: this.db.prepare<[string, string, string, number, number], Row>(
        'SELECT * FROM kv WHERE key >= ? AND key < ? AND key > ? ' +
          'AND (expires IS NULL OR expires > ?) ORDER BY key LIMIT ?',
      ),
      // one batch each: never one long DELETE on the event loop (the kv_expires index finds them)
      purge: this.db.prepare<[number, number]>(
        'DELETE FROM kv WHERE key IN (SELECT key FROM kv WHERE expires IS NOT NULL AND expires <= ? LIMIT ?)',
      ),
      logChange: this.db.prepare<[number, string, number, number]>(
        'INSERT INTO changes (revision, key, deleted, at) VALUES (?, ?, ?, ?)',
      ),
      changesSince: this.db.prepare<[number], { revision: number; key: string; deleted: number }>(
        'SELECT revision, key, deleted FROM changes WHERE revision > ? ORDER BY revision',
      ),
      maxChange: this.db.prepare<[], { r: number | null }>('SELECT MAX(revision) AS r FROM changes'),
      // the oldest rows only (revisions and times rise together): no scan of the whole log
      pruneChanges: this.db.prepare<[number, number]>(
        'DELETE FROM changes WHERE revision IN ' +
          '(SELECT revision FROM (SELECT revision, at FROM changes ORDER BY revision LIMIT ?) WHERE at < ?)',
      ),
      rawGet: this.db.prepare<[string], Row>('SELECT * FROM kv WHERE key = ?'),
      begin: this.db.prepare('BEGIN IMMEDIATE'),
      commit: this.db.prepare('COMMIT'),
      rollback: this.db.prepare('ROLLBACK'),
    };
    this.seen = this.stmts.maxChange.get()?.r ?? 0;
  }

  /**
   * WAL checkpoints run on a worker thread with its own connection (PASSIVE every CHECKPOINT_MS,
   * TRUNCATE when the WAL passes WAL_TRUNCATE_BYTES), not inside a commit on the event loop. If
   * the worker fails, automatic checkpoints come back.
   */
  private startCheckpointer(path: string): void {
    const fallBack = () => {
      if (this.db.open) this.db.pragma(`wal_autocheckpoint = ${AUTO_CHECKPOINT_PAGES}`);
    };
    try {
      const data: CheckpointerData = {
        path,
        intervalMs: CHECKPOINT_MS,
        checkMs: WAL_CHECK_MS,
        truncateBytes: WAL_TRUNCATE_BYTES,
        maxBytes: WAL_FORCE_BYTES,
        truncateWaitMs: TRUNCATE_WAIT_MS,
        addonPath: sqliteAddonPath(),
      };
      this.checkpointer = startWorker('checkpointer', () => new URL('./checkpointer.js', import.meta.url), {
        workerData: data,
      });
    } catch {
      return;
    }
    this.db.pragma('wal_autocheckpoint = 0');
    // it exits only if it gave up or crashed: commits checkpoint again, as SQLite does by default
    this.checkpointer.on('exit', () => {
      this.releaseWrites();
      if (!this.closing) fallBack();
    });
    this.checkpointer.on('message', (m: CheckpointerMessage) => {
      if (m === 'hold') {
        // flushes run whole within one turn, so no transaction is open here
        clearTimeout(this.writesHeld);
        // not unref'd: queued writes keep the process alive until they are committed
        this.writesHeld = setTimeout(() => this.releaseWrites(), HOLD_MAX_MS);
        this.checkpointer?.postMessage('held' satisfies OwnerMessage);
      } else if (m === 'release') this.releaseWrites();
    });
    this.checkpointer.on('error', () => {});
    this.checkpointer.unref();
  }

  private releaseWrites(): void {
    if (!this.writesHeld) return;
    clearTimeout(this.writesHeld);
    this.writesHeld = undefined;
    if (this.batch.length > 0) setImmediate(() => this.flush());
  }

  private migrate(): void {
    // each step reads the version inside its IMMEDIATE transaction: processes opening a new
    // file at the same moment (Auth Service workers) apply every migration exactly once
    for (;;) {
      const done = this.db
        .transaction(() => {
          const version = this.db.pragma('user_version', { simple: true }) as number;
          if (version > MIGRATIONS.length) {
            throw new MwiError(
              'STORAGE',
              `database schema version ${version} is newer than this mwi (${MIGRATIONS.length})`,
            );
          }
          if (version === MIGRATIONS.length) return true;
          this.db.exec(MIGRATIONS[version]!);
          this.db.pragma(`user_version = ${version + 1}`);
          return false;
        })
        .immediate();
      if (done) return;
    }
  }

  private liveRow(key: string): Row | undefined {
    return this.stmts.get.get(key, this.now());
  }

  private write(key: string, value: string, opts?: WriteOptions): Item {
    const revision = this.stmts.bump.get()!.value;
    this.stmts.upsert.run(key, value, revision, opts?.expires ?? null);
    this.stmts.logChange.run(revision, key, 0, this.now());
    this.written.push(revision);
    return { key, value, revision, expires: opts?.expires };
  }

  private remove(key: string): void {
    this.stmts.del.run(key);
    const revision = this.stmts.bump.get()!.value;
    this.stmts.logChange.run(revision, key, 1, this.now());
    this.written.push(revision);
  }

  /**
   * Group commit: writes issued in the same turn of the event loop share one IMMEDIATE
   * transaction (one WAL commit instead of one each). Each write checks its own condition and
   * settles on its own; a refused condition changes nothing and does not affect the others. A
   * storage error rolls the whole batch back and fails every write in it. Promises settle only
   * after the commit, so an awaited write is durable as before.
   */
  private enqueue<T>(run: () => { out: T; events: WatchEvent[] }): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.batch.push({ run, resolve: resolve as (v: unknown) => void, reject });
      if (this.batch.length === 1) setImmediate(() => this.flush());
    });
  }

  private flush(): void {
    // the checkpointer's release schedules the next flush
    if (this.writesHeld && !this.closing) return;
    const ops = this.batch.splice(0, MAX_BATCH);
    if (this.batch.length > 0) setImmediate(() => this.flush());
    if (!this.db.open) {
      for (const op of ops) op.reject(new MwiError('STORAGE', 'storage is closed'));
      return;
    }
    const results: Array<{ ok: true; out: unknown; events: WatchEvent[] } | { ok: false; err: unknown }> = [];
    this.written = [];
    try {
      this.stmts.begin.run();
      for (const op of ops) {
        try {
          results.push({ ok: true, ...op.run() });
        } catch (err) {
          // conditions are checked before anything is written: a refusal leaves nothing behind
          if (!isMwiError(err, 'ALREADY_EXISTS') && !isMwiError(err, 'COMPARE_FAILED')) throw err;
          results.push({ ok: false, err });
        }
      }
      this.stmts.commit.run();
    } catch (err) {
      if (this.db.inTransaction) this.stmts.rollback.run();
      const failure = isMwiError(err)
        ? err
        : new MwiError('STORAGE', `storage write failed: ${err instanceof Error ? err.message : String(err)}`, {
            cause: err,
          });
      for (const op of ops) op.reject(failure);
      return;
    }
    // our own changes are delivered now; the poller skips them when it reads the change log
    if (this.poller) for (const r of this.written) this.mine.add(r);
    ops.forEach((op, i) => {
      const r = results[i]!;
      if (!r.ok) return op.reject(r.err);
      for (const e of r.events) this.watchers.emit(e);
      op.resolve(r.out);
    });
  }

  async get(key: string): Promise<Item | undefined> {
    const row = this.liveRow(key);
    return row && toItem(row);
  }

  put(key: string, value: string, opts?: WriteOptions): Promise<Item> {
    return this.enqueue(() => {
      const item = this.write(key, value, opts);
      return { out: item, events: [{ type: 'put', item }] };
    });
  }

  create(key: string, value: string, opts?: WriteOptions): Promise<Item> {
    return this.enqueue(() => {
      if (this.liveRow(key)) throw new MwiError('ALREADY_EXISTS', `${key} already exists`);
      const item = this.write(key, value, opts);
      return { out: item, events: [{ type: 'put', item }] };
    });
  }

  compareAndSwap(key: string, revision: number, value: string, opts?: WriteOptions): Promise<Item> {
    return this.enqueue(() => {
      if (this.liveRow(key)?.revision !== revision) throw new MwiError('COMPARE_FAILED', `${key} changed concurrently`);
      const item = this.write(key, value, opts);
      return { out: item, events: [{ type: 'put', item }] };
    });
  }

  delete(key: string, revision?: number): Promise<boolean> {
    return this.enqueue(() => {
      const row = this.liveRow(key);
      if (!row || (revision !== undefined && row.revision !== revision)) return { out: false, events: [] };
      this.remove(key);
      return { out: true, events: [{ type: 'delete', key }] };
    });
  }

  transact(ops: TxOp[]): Promise<boolean> {
    return this.enqueue(() => {
      const holds = ops.every((o) =>
        o.op === 'create' ? !this.liveRow(o.key) : this.liveRow(o.key)?.revision === o.revision,
      );
      if (!holds) return { out: false, events: [] };
      const events = ops.map((o): WatchEvent => {
        if (o.op !== 'delete') return { type: 'put', item: this.write(o.key, o.value, { expires: o.expires }) };
        this.remove(o.key);
        return { type: 'delete', key: o.key };
      });
      return { out: true, events };
    });
  }

  async range(prefix: string, opts: RangeOptions = {}): Promise<Item[]> {
    // keys are ASCII paths, so every key with the prefix sorts below prefix + U+FFFF
    const rows = this.stmts.range.all(prefix, `${prefix}\uffff`, opts.startAfter ?? '', this.now(), opts.limit ?? -1);
    return rows.map(toItem);
  }

  watch(prefix: string, fn: (event: WatchEvent) => void): () => void {
    // changes made by other processes on the same file arrive through the change log
    this.poller ??= setInterval(() => this.pollChanges(), POLL_MS).unref();
    return this.watchers.add(prefix, fn);
  }

  /**
   * Delivers other processes' changes since the last poll (ours were delivered when made).
   * A deleted row is a delete, unless the key was written again since (by this process, whose
   * watchers already have the newer value, or by another, whose put comes later in the log); a
   * written row is the row as it is now, if no later change replaced it.
   */
  pollChanges(): void {
    if (!this.db.open) return;
    for (const c of this.stmts.changesSince.all(this.seen)) {
      this.seen = c.revision;
      if (this.mine.delete(c.revision)) continue;
      const row = this.stmts.rawGet.get(c.key);
      if (c.deleted) {
        if (!row || row.revision < c.revision) this.watchers.emit({ type: 'delete', key: c.key });
      } else if (row && row.revision === c.revision) this.watchers.emit({ type: 'put', item: toItem(row) });
    }
  }

  /**
   * Removes expired rows and old change-log entries; reads already ignore them, this only
   * reclaims space. Works in batches of PURGE_BATCH rows, each its own short transaction, and
   * yields to the event loop between them (finding 6 of issue #9: one DELETE of every expired
   * challenge stalled every request for as long as it ran). Resolves to the rows removed; stops
   * between two batches once `signal` fires or the backend is closing.
   */
  async purgeExpired(signal?: AbortSignal): Promise<number> {
    const cutoff = this.now() - CHANGES_KEPT_MS;
    while ((await this.purgeTurn(signal)) && this.stmts.pruneChanges.run(PURGE_BATCH, cutoff).changes === PURGE_BATCH);
    let removed = 0;
    while (await this.purgeTurn(signal)) {
      const n = this.stmts.purge.run(this.now(), PURGE_BATCH).changes;
      removed += n;
      if (n < PURGE_BATCH) break;
    }
    return removed;
  }

  /** Lets other work run; false once closing or aborted. Waits while the checkpointer holds writes. */
  private async purgeTurn(signal: AbortSignal | undefined): Promise<boolean> {
    do await new Promise<void>((r) => (this.writesHeld ? setTimeout(r, 10) : setImmediate(r)));
    while (this.writesHeld && !this.closing && !signal?.aborted);
    return this.db.open && !this.closing && !signal?.aborted;
  }

  async close(): Promise<void> {
    if (this.poller) clearInterval(this.poller);
    this.closing = true;
    await this.checkpointer?.terminate();
    this.releaseWrites();
    // writes already accepted are committed, not dropped
    while (this.batch.length > 0 && this.db.open) this.flush();
    if (this.db.open) this.db.close();
  }
}
