import type pg from 'pg';
import { MwiError } from '../errors.js';

/**
 * Advisory lock keys (pg_advisory_lock's two-int form): the class is "mwi" in ASCII, so mwi's
 * locks never meet another application's in a shared database.
 */
export const LOCK_CLASS = 0x6d7769;
export const LOCKS = { migrate: 1, purge: 2, auditPurge: 3 } as const;

/**
 * Schema migrations, applied in order; mwi_schema_version records each one applied. Keys compare
 * byte by byte (COLLATE "C"), as in SQLite and in JavaScript, so `range` returns the same order
 * on every backend whatever the database's locale.
 */
export const MIGRATIONS: string[] = [
  `CREATE TABLE mwi_kv (
     key text COLLATE "C" PRIMARY KEY,
     value text NOT NULL,
     revision bigint NOT NULL,
     expires bigint
   );
   CREATE INDEX mwi_kv_expires ON mwi_kv (expires) WHERE expires IS NOT NULL;
   CREATE TABLE mwi_counters (name text PRIMARY KEY, value bigint NOT NULL);
   -- revision: the last one given; pruned: the highest change-log revision purged so far
   INSERT INTO mwi_counters VALUES ('revision', 0), ('pruned', 0);
   CREATE TABLE mwi_changes (
     revision bigint PRIMARY KEY,
     key text COLLATE "C" NOT NULL,
     deleted boolean NOT NULL,
     at bigint NOT NULL
   );`,
  // the audit log of every replica (audit-db.ts)
  `CREATE TABLE mwi_events (
     id bigserial PRIMARY KEY,
     time timestamptz NOT NULL,
     event text NOT NULL,
     success boolean NOT NULL,
     refusal boolean NOT NULL,
     uid uuid NOT NULL,
     body text NOT NULL
   );
   CREATE INDEX mwi_events_time ON mwi_events (time, id);
   CREATE INDEX mwi_events_event_time ON mwi_events (event, time, id);
   CREATE INDEX mwi_events_uid ON mwi_events (uid);`,
];

/** Longest a replica waits for another one's migration before it gives up. */
const MIGRATE_WAIT_MS = 60_000;

/**
 * Brings the schema up to date. Replicas starting at the same moment take turns on an advisory
 * lock: the first applies what is missing, each migration in its own transaction with its version
 * row, and the others find nothing left to do. A database migrated by a newer mwi is refused.
 */
export async function migrate(pool: pg.Pool): Promise<void> {
  const c = await pool.connect();
  try {
    await c.query(`SET statement_timeout = ${MIGRATE_WAIT_MS}`);
    // the driver's own read timeout (8 s for the pool) would give up long before the server does
    const wait = { query_timeout: MIGRATE_WAIT_MS + 5000 };
    try {
      await c.query({ text: 'SELECT pg_advisory_lock($1, $2)', values: [LOCK_CLASS, LOCKS.migrate], ...wait });
    } catch (err) {
      if ((err as { code?: string }).code !== '57014') throw err;
      throw new MwiError(
        'STORAGE',
        `another replica held the schema migration lock for ${MIGRATE_WAIT_MS / 1000}s: is one stuck migrating ` +
          '(pg_stat_activity shows it)? Start again once it has finished',
        { cause: err },
      );
    }
    // CREATE TABLE IF NOT EXISTS needs the CREATE privilege even when the table exists: a role
    // that was given only the tables (an operator ran the migrations) must still start
    const exists = await c.query<{ t: string | null }>("SELECT to_regclass('mwi_schema_version') AS t");
    if (!exists.rows[0]?.t)
      await c.query('CREATE TABLE mwi_schema_version (version integer PRIMARY KEY, applied timestamptz NOT NULL)');
    const { rows } = await c.query<{ v: number }>('SELECT COALESCE(MAX(version), 0)::int AS v FROM mwi_schema_version');
    const version = rows[0]?.v ?? 0;
    if (version > MIGRATIONS.length)
      throw new MwiError(
        'STORAGE',
        `database schema version ${version} is newer than this mwi (${MIGRATIONS.length}): run the newer mwi`,
      );
    for (let v = version; v < MIGRATIONS.length; v++) {
      await c.query('BEGIN');
      try {
        await c.query({ text: MIGRATIONS[v]!, ...wait });
        await c.query('INSERT INTO mwi_schema_version (version, applied) VALUES ($1, now())', [v + 1]);
        await c.query('COMMIT');
      } catch (err) {
        await c.query('ROLLBACK').catch(() => {});
        throw err;
      }
    }
  } finally {
    // the session ends with the connection: its advisory lock and settings go with it
    c.release(true);
  }
}
