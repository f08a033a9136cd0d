import Database from 'better-sqlite3';
import { chmodSync } from 'node:fs';
import { MwiError } from '../errors.js';
import type { Backend, Item, RangeOptions, WatchEvent, WriteOptions } from './backend.js';
import { Watchers } from './watchers.js';

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
];

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

  constructor(
    path: string,
    private readonly now: () => number = Date.now,
  ) {
    this.db = new Database(path);
    // the database holds CA keys: owner-only (SQLite gives -wal/-shm the same mode)
    if (path !== ':memory:') chmodSync(path, 0o600);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
    this.stmts = {
      get: this.db.prepare<[string, number], Row>('SELECT * FROM kv WHERE key = ? AND (expires IS NULL OR expires > ?)'),
      bump: this.db.prepare<[], { value: number }>(`UPDATE counters SET value = value + 1 WHERE name = 'revision' RETURNING value`),
      upsert: this.db.prepare(
        'INSERT INTO kv (key, value, revision, expires) VALUES (?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, revision = excluded.revision, expires = excluded.expires',
      ),
      del: this.db.prepare<[string]>('DELETE FROM kv WHERE key = ?'),
      range: this.db.prepare<[string, string, string, number, number], Row>(
        'SELECT * FROM kv WHERE key >= ? AND key < ? AND key > ? AND (expires IS NULL OR expires > ?) ORDER BY key LIMIT ?',
      ),
      purge: this.db.prepare<[number]>('DELETE FROM kv WHERE expires IS NOT NULL AND expires <= ?'),
    };
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > MIGRATIONS.length) {
      throw new MwiError('STORAGE', `database schema version ${version} is newer than this mwi (${MIGRATIONS.length})`);
    }
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]!);
        this.db.pragma(`user_version = ${v + 1}`);
      }).immediate();
    }
  }

  private liveRow(key: string): Row | undefined {
    return this.stmts.get.get(key, this.now());
  }

  private write(key: string, value: string, opts?: WriteOptions): Item {
    const revision = this.stmts.bump.get()!.value;
    this.stmts.upsert.run(key, value, revision, opts?.expires ?? null);
    return { key, value, revision, expires: opts?.expires };
  }

  private tx<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  async get(key: string): Promise<Item | undefined> {
    const row = this.liveRow(key);
    return row && toItem(row);
  }

  async put(key: string, value: string, opts?: WriteOptions): Promise<Item> {
    const item = this.tx(() => this.write(key, value, opts));
    this.watchers.emit({ type: 'put', item });
    return item;
  }

  async create(key: string, value: string, opts?: WriteOptions): Promise<Item> {
    const item = this.tx(() => {
      if (this.liveRow(key)) throw new MwiError('ALREADY_EXISTS', `${key} already exists`);
      return this.write(key, value, opts);
    });
    this.watchers.emit({ type: 'put', item });
    return item;
  }

  async compareAndSwap(key: string, revision: number, value: string, opts?: WriteOptions): Promise<Item> {
    const item = this.tx(() => {
      if (this.liveRow(key)?.revision !== revision) throw new MwiError('COMPARE_FAILED', `${key} changed concurrently`);
      return this.write(key, value, opts);
    });
    this.watchers.emit({ type: 'put', item });
    return item;
  }

  async delete(key: string, revision?: number): Promise<boolean> {
    const deleted = this.tx(() => {
      const row = this.liveRow(key);
      if (!row || (revision !== undefined && row.revision !== revision)) return false;
      this.stmts.del.run(key);
      return true;
    });
    if (deleted) this.watchers.emit({ type: 'delete', key });
    return deleted;
  }

  async range(prefix: string, opts: RangeOptions = {}): Promise<Item[]> {
    // keys are ASCII paths, so every key with the prefix sorts below prefix + U+FFFF
    const rows = this.stmts.range.all(prefix, `${prefix}\uffff`, opts.startAfter ?? '', this.now(), opts.limit ?? -1);
    return rows.map(toItem);
  }

  watch(prefix: string, fn: (event: WatchEvent) => void): () => void {
    return this.watchers.add(prefix, fn);
  }

  /** Removes expired rows; reads already ignore them, this only reclaims space. */
  purgeExpired(): number {
    return this.stmts.purge.run(this.now()).changes;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
