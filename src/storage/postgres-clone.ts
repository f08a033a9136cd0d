import { existsSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pg from 'pg';
import { MwiError } from '../errors.js';
import type { Backend, Item, TxOp } from './backend.js';
import { openBackend } from './open.js';
import { connectionConfig } from './postgres-pool.js';
import { isPostgresUrl, parsePostgresUrl, type PgTarget } from './postgres-url.js';

/** Items read from the source per page, and rows written per INSERT into PostgreSQL. */
export const CLONE_CHUNK = 1000;

/** A storage URL as it may be printed: a PostgreSQL URL without its password or parameters. */
export function storageName(spec: string | undefined, dataDir: string): string {
  if (!spec || spec === 'sqlite') return `sqlite://${resolve(dataDir, 'mwi.db')}`;
  return isPostgresUrl(spec) ? parsePostgresUrl(spec).display : spec;
}

/** An error about one side of the copy, naming its flag (`--from`, `--to`) instead of `storage`. */
function sideError(err: unknown, spec: string, flag: string): MwiError {
  const e = err instanceof MwiError ? err : undefined;
  const message = e
    ? e.message.replace(/^storage: /, '')
    : `${spec} is not a storage mwi can read (${err instanceof Error ? err.message : String(err)})`;
  return new MwiError(e?.code ?? 'BAD_CONFIG', message, { field: flag, cause: err });
}

/** Checks a storage URL without opening it (a PostgreSQL URL's parameters and files included). */
function checkSpec(spec: string, flag: string): void {
  try {
    if (isPostgresUrl(spec)) return void parsePostgresUrl(spec);
    if (spec === 'sqlite' || spec.startsWith('sqlite://') || spec.startsWith('memory')) return;
    throw new MwiError(
      'BAD_CONFIG',
      `unsupported storage ${JSON.stringify(spec.replace(/\/\/[^@/]*@/, '//***@'))} ` +
        '(expected sqlite, sqlite:///PATH or postgres://...)',
    );
  } catch (err) {
    throw sideError(err, spec, flag);
  }
}

async function openSide(spec: string, dataDir: string, flag: string): Promise<Backend> {
  try {
    return await openBackend(spec, dataDir);
  } catch (err) {
    throw sideError(err, spec, flag);
  }
}

/** Every live item of `b`, a page at a time, in key order. */
async function* pages(b: Backend): AsyncGenerator<Item[]> {
  let after: string | undefined;
  for (;;) {
    const page = await b.range('/', { limit: CLONE_CHUNK, ...(after !== undefined ? { startAfter: after } : {}) });
    if (page.length > 0) yield page;
    if (page.length < CLONE_CHUNK) return;
    after = page[page.length - 1]!.key;
  }
}

/** `{bots: 3, tokens: 10}`: items by their key's first part. */
export type KindCounts = Record<string, number>;

function kindOf(key: string): string {
  return key.split('/')[1] || key;
}

/**
 * A connection of its own for the copy: no statement timeout (one transaction that writes
 * everything may take minutes), TLS as the URL asks, libpq's `prefer`/`allow` second try included.
 */
async function connect(t: PgTarget): Promise<pg.Client> {
  const open = async (ssl: false | import('node:tls').ConnectionOptions) => {
    const c = new pg.Client({ ...connectionConfig(t, ssl), application_name: `${t.applicationName} backend clone` });
    c.on('error', () => {});
    await c.connect();
    return c;
  };
  try {
    return await open(t.tls);
  } catch (err) {
    if (t.fallback === undefined) throw err;
    return open(t.fallback);
  }
}

/** Which database a connection reached, as the server says (not the URL: localhost and 127.0.0.1 are one). */
async function identity(t: PgTarget): Promise<string> {
  const c = await connect(t);
  try {
    const { rows } = await c.query<{ id: string }>(
      // the server's own port and start time (to the microsecond) tell servers apart; the database name, databases
      "SELECT current_database() || ' ' || current_setting('port') || ' ' || pg_postmaster_start_time()::text AS id",
    );
    return rows[0]!.id;
  } finally {
    await c.end().catch(() => {});
  }
}

export interface CloneOptions {
  from: string | undefined;
  to: string;
  dataDir: string;
  /** Replace what the destination holds (Teleport's `force`); otherwise it must be empty. */
  force: boolean;
  /** Told, with `--force`, what the destination holds before it is replaced (and only when it holds something). */
  onReplace?: (held: KindCounts) => void;
}

/**
 * `mwi backend clone` (Teleport's `teleport backend clone`): copies every item of one storage
 * into another, e.g. SQLite into PostgreSQL before moving to replicas. Expired items are left
 * behind; revisions are the destination's own. The copy is one transaction, all of it or nothing:
 * into PostgreSQL, on a connection of its own, CLONE_CHUNK rows per statement, however many items.
 * Without `force` the destination must be empty; with it, the destination becomes the source's
 * copy (what it held and the source does not is deleted). Resolves to the number of items copied.
 */
export async function cloneStorage(opts: CloneOptions): Promise<number> {
  const from = opts.from ?? 'sqlite';
  checkSpec(from, '--from');
  checkSpec(opts.to, '--to');
  const sqlitePath = (spec: string) =>
    spec === 'sqlite' ? join(opts.dataDir, 'mwi.db') : spec.startsWith('sqlite://') ? spec.slice(9) : '';
  const sqlite = sqlitePath(from);
  // opening a SQLite path creates the file: a wrong path must not clone an empty new database
  if (sqlite && !existsSync(sqlite))
    throw new MwiError('BAD_CONFIG', `no such SQLite database ${sqlite}`, { field: '--from' });
  if (from.startsWith('memory') || opts.to.startsWith('memory'))
    throw new MwiError('BAD_CONFIG', 'memory:// storage is empty when a process starts: there is nothing to copy', {
      field: from.startsWith('memory') ? '--from' : '--to',
    });
  const same = () =>
    new MwiError('BAD_CONFIG', 'the source and the destination are the same storage', { field: '--to' });
  const toSqlite = sqlitePath(opts.to);
  if (storageName(from, opts.dataDir) === storageName(opts.to, opts.dataDir)) throw same();
  if (sqlite && toSqlite && existsSync(toSqlite) && realpathSync(sqlite) === realpathSync(toSqlite)) throw same();
  const src = await openSide(from, opts.dataDir, '--from');
  try {
    const dst = await openSide(opts.to, opts.dataDir, '--to');
    try {
      if (isPostgresUrl(opts.to)) {
        const target = parsePostgresUrl(opts.to);
        if (isPostgresUrl(from) && (await identity(parsePostgresUrl(from))) === (await identity(target))) throw same();
        return await copyIntoPostgres(src, target, opts);
      }
      return await copyIntoBackend(src, dst, opts);
    } finally {
      await dst.close();
    }
  } finally {
    await src.close();
  }
}

function refuseHeld(first: string): MwiError {
  return new MwiError(
    'BAD_CONFIG',
    `the destination already holds data (${first}, ...): clone copies into an empty storage; ` +
      '--force writes over what is there (it goes back to the source: what was done there since is lost)',
    { field: '--to' },
  );
}

/**
 * Into PostgreSQL: one transaction on a connection of its own that first locks the revision
 * counter (as every write does, so a replica left running waits rather than interleaves), then
 * writes CLONE_CHUNK rows per statement, each with its change-log entry, as the backend's own
 * writes do, so that a replica's caches would follow.
 */
async function copyIntoPostgres(src: Backend, t: PgTarget, opts: CloneOptions): Promise<number> {
  let c: pg.Client;
  try {
    c = await connect(t);
  } catch (err) {
    throw new MwiError('STORAGE', `storage unavailable: PostgreSQL at ${t.display}: ${(err as Error).message}`, {
      field: '--to',
      cause: err,
    });
  }
  const now = Date.now();
  try {
    // READ COMMITTED whatever the database's default, as the backend's writes: the counter's row lock orders
    // writers, and under SERIALIZABLE taking it could fail with a serialization error
    await c.query('BEGIN ISOLATION LEVEL READ COMMITTED');
    // a statement_timeout set on the role or the database would cut a long copy off half-way
    await c.query('SET LOCAL statement_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0');
    const counter = await c.query<{ value: string }>(
      "SELECT value::text FROM mwi_counters WHERE name = 'revision' FOR UPDATE",
    );
    let rev = Number(counter.rows[0]!.value);
    const held = await c.query<{ kind: string; n: number; first: string }>(
      "SELECT split_part(key, '/', 2) AS kind, count(*)::int AS n, min(key) AS first FROM mwi_kv " +
        'WHERE expires IS NULL OR expires > $1 GROUP BY 1 ORDER BY 1',
      [now],
    );
    if (held.rows.length > 0) {
      if (!opts.force) throw refuseHeld(held.rows.map((r) => r.first).sort()[0]!);
      opts.onReplace?.(Object.fromEntries(held.rows.map((r) => [r.kind || '(other)', r.n])));
    }
    // everything goes, expired rows included: the destination becomes the source's copy
    const deleted = await c.query(
      'WITH d AS (DELETE FROM mwi_kv RETURNING key) INSERT INTO mwi_changes (revision, key, deleted, at) ' +
        'SELECT $1::bigint + row_number() OVER (ORDER BY key), key, true, $2 FROM d',
      [rev, now],
    );
    rev += deleted.rowCount ?? 0;
    let copied = 0;
    for await (const page of pages(src)) {
      const revisions = page.map((_, i) => rev + i + 1);
      await c.query(
        'WITH kv AS (INSERT INTO mwi_kv (key, value, revision, expires) ' +
          'SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) RETURNING key, revision) ' +
          'INSERT INTO mwi_changes (revision, key, deleted, at) SELECT revision, key, false, $5 FROM kv',
        [page.map((i) => i.key), page.map((i) => i.value), revisions, page.map((i) => i.expires ?? null), now],
      );
      rev += page.length;
      copied += page.length;
    }
    await c.query("UPDATE mwi_counters SET value = $1 WHERE name = 'revision'", [rev]);
    await c.query('COMMIT');
    return copied;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    if (err instanceof MwiError) throw err;
    throw new MwiError('STORAGE', `copy into PostgreSQL at ${t.display} failed, nothing was copied: ${String(err)}`, {
      field: '--to',
      cause: err,
    });
  } finally {
    await c.end().catch(() => {});
  }
}

/** Into SQLite: one `transact`, its conditions those of an empty (or, with force, unchanged) destination. */
async function copyIntoBackend(src: Backend, dst: Backend, opts: CloneOptions): Promise<number> {
  const held = new Map<string, number>();
  for await (const page of pages(dst)) for (const i of page) held.set(i.key, i.revision);
  if (held.size > 0) {
    if (!opts.force) throw refuseHeld([...held.keys()][0]!);
    const counts: KindCounts = {};
    for (const k of held.keys()) counts[kindOf(k)] = (counts[kindOf(k)] ?? 0) + 1;
    opts.onReplace?.(counts);
  }
  const ops: TxOp[] = [];
  for await (const page of pages(src))
    for (const i of page) {
      const revision = held.get(i.key);
      held.delete(i.key);
      ops.push(
        revision === undefined
          ? { op: 'create', key: i.key, value: i.value, expires: i.expires }
          : { op: 'compareAndSwap', key: i.key, revision, value: i.value, expires: i.expires },
      );
    }
  for (const [key, revision] of held) ops.push({ op: 'delete', key, revision });
  const copied = ops.filter((o) => o.op !== 'delete').length;
  if (!(await dst.transact(ops)))
    throw new MwiError('STORAGE', 'the destination was written to during the copy: nothing was copied');
  return copied;
}
