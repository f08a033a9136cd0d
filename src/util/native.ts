// What differs between the npm package (node runs dist/src/cli/*.js next to node_modules) and a
// single executable (`npm run build:binary`: one file, its JavaScript and native module embedded
// as assets). Everything else runs the same code either way.
import type Database from 'better-sqlite3';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { MwiError } from '../errors.js';

/** better-sqlite3's addon, as scripts/build-binary.mjs names it among the mwi binary's assets. */
const SQLITE_ADDON_ASSET = 'better_sqlite3.node';

/**
 * node:sea, or undefined where Node.js has none (before 20.12; mwi's engines say >= 20): such a
 * Node.js runs no single executable either. Required, not imported, so that a missing one is not
 * an error at load.
 */
const sea = ((): typeof import('node:sea') | undefined => {
  try {
    return createRequire(import.meta.url)('node:sea') as typeof import('node:sea');
  } catch {
    return undefined;
  }
})();
const isSea = (): boolean => sea?.isSea() ?? false;
const getAsset = (name: string): ArrayBuffer => sea!.getAsset(name);

/** True in a single executable built by `npm run build:binary`, false under `node dist/...`. */
export function isSingleExecutable(): boolean {
  return isSea();
}

/** The extracted addon of this process (every thread loads the same file: one SQLite library). */
let addonPath: string | undefined;
/** The addon as this thread loaded it. */
let addon: object | undefined;

/**
 * The directory the addon is shared in, `TMPDIR/mwi-sqlite-UID-HASH` (HASH: the first 16 hex
 * digits of the addon's SHA-256), made 0700 if it is not there; undefined when the name is taken
 * by something this process must not trust: not a directory (a symbolic link), another user's,
 * open to others, or in a TMPDIR where others may rename entries (writable by them, no sticky
 * bit), which could swap the directory between the check and the load.
 */
function sharedDir(digest: string): string | undefined {
  const uid = process.getuid?.();
  if (uid === undefined) return undefined;
  const parent = statSync(tmpdir());
  if ((parent.uid !== uid && parent.uid !== 0) || ((parent.mode & 0o022) !== 0 && (parent.mode & 0o1000) === 0))
    return undefined;
  const dir = join(tmpdir(), `mwi-sqlite-${uid}-${digest.slice(0, 16)}`);
  try {
    mkdirSync(dir, { mode: 0o700 });
    chmodSync(dir, 0o700); // whatever the umask took away
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const st = lstatSync(dir);
  return st.isDirectory() && st.uid === uid && (st.mode & 0o777) === 0o700 ? dir : undefined;
}

/** True when `file` is a plain file of ours that no one else may write, with the addon's hash. */
function intact(file: string, digest: string): boolean {
  try {
    const st = lstatSync(file);
    if (!st.isFile() || st.uid !== process.getuid?.() || (st.mode & 0o022) !== 0) return false;
    return createHash('sha256').update(readFileSync(file)).digest('hex') === digest;
  } catch {
    return false;
  }
}

/**
 * Puts the embedded addon where `process.dlopen` can load it, and returns its path. Content-
 * addressed: one copy per user and addon in `sharedDir`, checked by its hash before each load
 * and written again (a temporary file renamed over it, so that a process loading it meanwhile
 * sees a whole file) when it is missing or differs. Nothing is removed at exit, so a process
 * killed with SIGKILL leaves nothing new behind, and two mwi processes (the workers of
 * `--workers`) share one copy. Where the shared name cannot be trusted (sharedDir), a private
 * directory (mkdtemp, 0700) removed at exit, as before.
 */
function extractAddon(): string {
  if (addonPath) return addonPath;
  const bytes = new Uint8Array(getAsset(SQLITE_ADDON_ASSET));
  const digest = createHash('sha256').update(bytes).digest('hex');
  let dir: string | undefined;
  let made: string | undefined;
  try {
    dir = sharedDir(digest);
    if (dir) {
      const file = join(dir, SQLITE_ADDON_ASSET);
      if (!intact(file, digest)) {
        const tmp = join(dir, `.${SQLITE_ADDON_ASSET}.${process.pid}.${randomBytes(6).toString('hex')}`);
        try {
          writeFileSync(tmp, bytes, { mode: 0o500, flag: 'wx' });
          renameSync(tmp, file);
        } finally {
          rmSync(tmp, { force: true });
        }
      }
      return (addonPath = file);
    }
    made = mkdtempSync(join(tmpdir(), 'mwi-sqlite-'));
    const file = join(made, SQLITE_ADDON_ASSET);
    writeFileSync(file, bytes, { mode: 0o500 });
    const remove = made;
    process.once('exit', () => rmSync(remove, { recursive: true, force: true }));
    return (addonPath = file);
  } catch (cause) {
    if (made) rmSync(made, { recursive: true, force: true });
    throw new MwiError('STORAGE', `cannot write SQLite's native module to a private directory under ${tmpdir()}`, {
      cause,
    });
  }
}

function dlopen(file: string): object {
  const module = { exports: {} };
  try {
    process.dlopen(module, file);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    // a TMPDIR mounted noexec refuses to map code: the one case the user fixes with a setting
    if (/failed to map segment|operation not permitted/i.test(reason))
      throw new MwiError(
        'BAD_CONFIG',
        `cannot load SQLite's native module from ${tmpdir()}, which refuses to run code (mounted ` +
          `noexec?): set TMPDIR to a directory where programs may run (${reason})`,
        { field: 'TMPDIR', cause },
      );
    throw new MwiError('STORAGE', `cannot load SQLite's native module from ${file}: ${reason}`, { cause });
  }
  return module.exports;
}

/**
 * better-sqlite3's Database options: none under `node dist/...` (the npm module finds its own
 * addon), the embedded addon in a single executable. A worker thread passes the path its owner
 * gave it (`sqliteAddonPath()`), so that the process loads SQLite once: two copies of SQLite on
 * one database file would release each other's POSIX locks.
 */
export function sqliteOptions(path?: string): Database.Options {
  if (!path && !isSea()) return {};
  // once per thread, as require() would (module state is per thread: a worker loads its own)
  addon ??= dlopen(path ?? extractAddon());
  // better-sqlite3 takes the loaded addon object too (lib/database.js); its types say string only
  return { nativeBinding: addon as unknown as string };
}

/** The file `sqliteOptions()` loaded in this process, for worker threads (undefined outside an SEA). */
export function sqliteAddonPath(): string | undefined {
  return addonPath;
}

/**
 * Starts a worker thread: from its compiled file next to the caller (`node dist/...`), or from its
 * bundle embedded as the asset `<name>.cjs` in a single executable.
 */
export function startWorker(name: string, file: () => URL, options: WorkerOptions): Worker {
  if (isSea()) return new Worker(sea!.getAsset(`${name}.cjs`, 'utf8'), { ...options, eval: true });
  return new Worker(file(), options);
}

/** koffi's addon (the FFI the Workload API reads SO_PEERCRED with), as the tbot binary names it among its assets. */
const KOFFI_ADDON_ASSET = 'koffi.node';

/** The koffi module of this thread. */
let koffiModule: typeof import('koffi') | undefined;

/**
 * koffi: the npm package under `node dist/...` (required when first used, so that tbot loads no
 * FFI unless a service needs it); in a single executable, its addon embedded as an asset, written
 * to the same content-addressed directory as SQLite's (see extractAddon) and loaded with
 * `process.dlopen`. The raw addon is koffi's API (the package only adds deprecated aliases).
 */
export function loadKoffi(): typeof import('koffi') {
  if (koffiModule) return koffiModule;
  if (!isSea()) return (koffiModule = createRequire(import.meta.url)('koffi') as typeof import('koffi'));
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(getAsset(KOFFI_ADDON_ASSET));
  } catch (cause) {
    throw new MwiError('BAD_CONFIG', 'this binary was built without koffi, which the Workload API needs', { cause });
  }
  const digest = createHash('sha256').update(bytes).digest('hex');
  let dir = sharedDir(digest);
  if (!dir) {
    // (a TMPDIR whose shared name cannot be trusted: a private directory, removed at exit)
    const made = (dir = mkdtempSync(join(tmpdir(), 'mwi-koffi-')));
    process.once('exit', () => rmSync(made, { recursive: true, force: true }));
  }
  const file = join(dir, KOFFI_ADDON_ASSET);
  if (!intact(file, digest)) {
    const tmp = join(dir, `.${KOFFI_ADDON_ASSET}.${process.pid}.${randomBytes(6).toString('hex')}`);
    try {
      writeFileSync(tmp, bytes, { mode: 0o500, flag: 'wx' });
      renameSync(tmp, file);
    } finally {
      rmSync(tmp, { force: true });
    }
  }
  const module = { exports: {} };
  process.dlopen(module, file);
  return (koffiModule = module.exports as typeof import('koffi'));
}
