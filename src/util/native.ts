// What differs between the npm package (node runs dist/src/cli/*.js next to node_modules) and a
// single executable (`npm run build:binary`: one file, its JavaScript and native module embedded
// as assets). Everything else runs the same code either way.
import type Database from 'better-sqlite3';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getAsset, isSea } from 'node:sea';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import { MwiError } from '../errors.js';

/** The asset names scripts/build-binary.mjs embeds in the mwi binary. */
export const SQLITE_ADDON_ASSET = 'better_sqlite3.node';

/** True in a single executable built by `npm run build:binary`, false under `node dist/...`. */
export function isSingleExecutable(): boolean {
  return isSea();
}

/** The extracted addon of this process (every thread loads the same file: one SQLite library). */
let addonPath: string | undefined;
/** The addon as this thread loaded it. */
let addon: object | undefined;

/** Writes the embedded addon to a private directory (0700), removed when the process exits. */
function extractAddon(): string {
  if (addonPath) return addonPath;
  let dir: string | undefined;
  try {
    dir = mkdtempSync(join(tmpdir(), 'mwi-sqlite-'));
    const file = join(dir, SQLITE_ADDON_ASSET);
    writeFileSync(file, new Uint8Array(getAsset(SQLITE_ADDON_ASSET)), { mode: 0o500 });
    const made = dir;
    process.once('exit', () => rmSync(made, { recursive: true, force: true }));
    addonPath = file;
    return file;
  } catch (cause) {
    if (dir) rmSync(dir, { recursive: true, force: true });
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
    // a TMPDIR mounted noexec refuses to map code: say which setting to change
    throw new MwiError(
      'STORAGE',
      `cannot load SQLite's native module from ${file} (is ${tmpdir()} mounted noexec? set TMPDIR to a ` +
        'directory where programs may run)',
      { cause },
    );
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
  if (isSea()) return new Worker(getAsset(`${name}.cjs`, 'utf8'), { ...options, eval: true });
  return new Worker(file(), options);
}
