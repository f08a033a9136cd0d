import { MwiError } from '../errors.js';
import { openPool, storageError } from './postgres-pool.js';
import { migrate } from './postgres-schema.js';
import { isPostgresUrl, parsePostgresUrl } from './postgres-url.js';

/**
 * `mwi backend migrate`: brings a PostgreSQL database's schema up to this mwi's, as a replica's
 * start does, and stops. For a database whose replicas run as a role that may not create tables:
 * the owner runs this, before the first start and at each upgrade. Resolves to the versions
 * before and after, and the database's name without its password.
 */
export async function migrateStorage(spec: string): Promise<{ display: string; before: number; after: number }> {
  if (!isPostgresUrl(spec))
    throw new MwiError(
      'BAD_CONFIG',
      'only PostgreSQL storage is migrated by this command (SQLite migrates itself when mwi start opens it)',
      { field: '--storage' },
    );
  const t = parsePostgresUrl(spec);
  const pool = await openPool(t);
  try {
    const version = async () => {
      // a table named in a statement must exist even where a CASE would not read it: two queries
      const exists = await pool.query<{ t: string | null }>("SELECT to_regclass('mwi_schema_version') AS t");
      if (!exists.rows[0]?.t) return 0;
      const { rows } = await pool.query<{ v: number }>(
        'SELECT COALESCE(MAX(version), 0)::int AS v FROM mwi_schema_version',
      );
      return rows[0]?.v ?? 0;
    };
    const before = await version();
    await migrate(pool);
    return { display: t.display, before, after: await version() };
  } catch (err) {
    throw storageError(err, t, 'storage', true);
  } finally {
    await pool.end().catch(() => {});
  }
}
