import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MwiError } from '../errors.js';
import type { Backend, Item } from './backend.js';
import { openBackend } from './open.js';
import { isPostgresUrl, parsePostgresUrl } from './postgres-url.js';

/** Items read from the source per page. */
const PAGE = 1000;

/** A storage URL as it may be printed: a PostgreSQL URL without its password or parameters. */
export function storageName(spec: string | undefined, dataDir: string): string {
  if (!spec || spec === 'sqlite') return `sqlite://${join(dataDir, 'mwi.db')}`;
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

/** Every live item of `b`, in key order. */
async function readAll(b: Backend): Promise<Item[]> {
  const out: Item[] = [];
  for (;;) {
    const page = await b.range('/', { limit: PAGE, ...(out.length ? { startAfter: out[out.length - 1]!.key } : {}) });
    out.push(...page);
    if (page.length < PAGE) return out;
  }
}

export interface CloneOptions {
  from: string | undefined;
  to: string;
  dataDir: string;
  /** Write over what the destination holds (Teleport's `force`); otherwise it must be empty. */
  force: boolean;
}

/**
 * `mwi backend clone` (Teleport's `teleport backend clone`): copies every item of one storage
 * into another, e.g. SQLite into PostgreSQL before moving to replicas. Expired items are left
 * behind; revisions are the destination's own. Without `force` the destination must be empty and
 * the copy is one transaction: all of it or nothing. Resolves to the number of items copied.
 */
export async function cloneStorage(opts: CloneOptions): Promise<number> {
  const from = opts.from ?? 'sqlite';
  checkSpec(from, '--from');
  checkSpec(opts.to, '--to');
  const sqlite = from === 'sqlite' ? join(opts.dataDir, 'mwi.db') : from.startsWith('sqlite://') ? from.slice(9) : '';
  // opening a SQLite path creates the file: a wrong path must not clone an empty new database
  if (sqlite && !existsSync(sqlite))
    throw new MwiError('BAD_CONFIG', `no such SQLite database ${sqlite}`, { field: '--from' });
  if (from.startsWith('memory') || opts.to.startsWith('memory'))
    throw new MwiError('BAD_CONFIG', 'memory:// storage is empty when a process starts: there is nothing to copy', {
      field: from.startsWith('memory') ? '--from' : '--to',
    });
  if (storageName(from, opts.dataDir) === storageName(opts.to, opts.dataDir))
    throw new MwiError('BAD_CONFIG', 'the source and the destination are the same storage', { field: '--to' });
  const src = await openSide(from, opts.dataDir, '--from');
  try {
    const dst = await openSide(opts.to, opts.dataDir, '--to');
    try {
      const items = await readAll(src);
      if (!opts.force) {
        const [first] = await dst.range('/', { limit: 1 });
        if (first)
          throw new MwiError(
            'BAD_CONFIG',
            `the destination already holds data (${first.key}, ...): clone copies into an empty storage; ` +
              '--force writes over what is there',
            { field: '--to' },
          );
        const ok = await dst.transact(
          items.map((i) => ({ op: 'create', key: i.key, value: i.value, expires: i.expires })),
        );
        if (!ok) throw new MwiError('STORAGE', 'the destination was written to during the copy: nothing was copied');
      } else {
        for (let i = 0; i < items.length; i += PAGE)
          await Promise.all(items.slice(i, i + PAGE).map((it) => dst.put(it.key, it.value, { expires: it.expires })));
      }
      return items.length;
    } finally {
      await dst.close();
    }
  } finally {
    await src.close();
  }
}
