import { join } from 'node:path';
import { MwiError } from '../errors.js';
import type { Backend } from './backend.js';
import { MemoryBackend } from './memory.js';
import { PostgresBackend } from './postgres.js';
import { isPostgresUrl } from './postgres-url.js';
import { SqliteBackend } from './sqlite.js';

/**
 * Opens the backend named by `--storage`: empty or `sqlite` (the file `mwi.db` under the data
 * dir), `sqlite:///abs/path.db`, `memory://`, or `postgres://` / `postgresql://` (libpq's URL
 * form and PG* environment: postgres-url.ts). Asynchronous because a network backend connects
 * (and migrates its schema) before it can answer; an unsupported spec rejects with BAD_CONFIG
 * naming `storage`.
 */
export async function openBackend(spec: string | undefined, dataDir: string): Promise<Backend> {
  if (!spec || spec === 'sqlite') return new SqliteBackend(join(dataDir, 'mwi.db'));
  if (spec.startsWith('sqlite://')) return new SqliteBackend(spec.slice('sqlite://'.length));
  if (spec === 'memory://' || spec === 'memory') return new MemoryBackend();
  if (isPostgresUrl(spec)) return PostgresBackend.open(spec);
  throw new MwiError(
    'BAD_CONFIG',
    `unsupported storage ${JSON.stringify(spec.replace(/\/\/[^@/]*@/, '//***@'))} ` +
      '(expected sqlite, sqlite:///PATH, memory:// or postgres://...)',
    { field: 'storage' },
  );
}
