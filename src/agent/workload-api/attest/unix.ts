import { createHash } from 'node:crypto';
import { open, readlink } from 'node:fs/promises';
import type { PeerCredentials } from '../peercred.js';
import { mountNamespace } from '../process.js';
import type { UnixAttestation } from './types.js';

/** Teleport's default for binary_hash_max_size_bytes: 1 GiB. */
export const DEFAULT_BINARY_HASH_MAX_BYTES = 1024 ** 3;

export interface UnixAttestorOptions {
  /** Larger executables get no binary_hash (hashing them on each connection would be a DoS); -1: no limit. */
  binaryHashMaxSizeBytes: number;
  /** /proc, or a directory shaped like it (tests). */
  procRoot?: string;
  /** Hashes by file identity (default: one cache per process). */
  hashCache?: Map<string, string>;
}

/** What one attestation may be given besides the options. */
export interface UnixAttestContext {
  /** Aborted when the connection closes: a hash in progress stops reading. */
  signal?: AbortSignal | undefined;
  /** The executable pinned at accept (device, inode): a hash of any other file is not reported. */
  exe?: { dev: number; ino: number } | undefined;
}

/** How many executables' hashes are kept: beyond it, the oldest goes. */
const HASH_CACHE_ENTRIES = 256;
/** How many executables are hashed at once (the others wait): a flood of large binaries costs this many reads. */
export const MAX_CONCURRENT_HASHES = 2;
const hashes = new Map<string, string>();
/** Hashes being computed, by file key: concurrent connections of one binary share one read. */
const inFlight = new Map<string, Promise<string | undefined | null>>();
let running = 0;
const waiting: (() => void)[] = [];

/** A turn to hash (undefined when `signal` aborted the wait); call what it returns when done. */
async function slot(signal: AbortSignal | undefined): Promise<(() => void) | undefined> {
  while (running >= MAX_CONCURRENT_HASHES) {
    await new Promise<void>((resolve) => waiting.push(resolve));
    if (signal?.aborted) {
      waiting.shift()?.();
      return undefined;
    }
  }
  running++;
  return () => {
    running--;
    waiting.shift()?.();
  };
}

/**
 * What identifies the content of an executable without reading it: device, inode, size, and the
 * times any write changes (a file rewritten in place gets a new mtime and ctime). A process that
 * connects a thousand times costs one hash, not a thousand reads of its binary.
 */
export function fileKey(st: { dev: number; ino: number; size: number; mtimeMs: number; ctimeMs: number }): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

/**
 * Unix attestation (Teleport's unix attestor): the kernel's pid/uid/gid, then the executable's path
 * and SHA-256 through /proc/PID/exe, which names the file the process runs even when its path was
 * replaced since. A process that exits, or that tbot may not inspect, keeps pid/uid/gid only: the
 * Auth Service's rules then see no binary attributes, and a rule on them does not match.
 * `binary_path` is reported only for a process in tbot's own mount namespace: in another one (a
 * container, or `unshare -m` with a bind mount over an allowed path) the path is the one that
 * namespace shows, which its owner may have arranged; `binary_hash` still identifies the program.
 */
export async function attestUnix(
  cred: PeerCredentials,
  opts: UnixAttestorOptions,
  ctx: UnixAttestContext = {},
): Promise<UnixAttestation> {
  const procRoot = opts.procRoot ?? '/proc';
  const exe = `${procRoot}/${cred.pid}/exe`;
  const out: UnixAttestation = { attested: true, pid: cred.pid, uid: cred.uid, gid: cred.gid };
  let path: string;
  try {
    path = await readlink(exe);
  } catch {
    return out;
  }
  const ns = mountNamespace(cred.pid, procRoot);
  if (ns !== undefined && ns === mountNamespace('self', procRoot)) out.binary_path = path;
  try {
    const file = await open(exe, 'r');
    try {
      const st = await file.stat();
      if (ctx.exe && (st.dev !== ctx.exe.dev || st.ino !== ctx.exe.ino)) return out;
      if (opts.binaryHashMaxSizeBytes !== -1 && st.size > opts.binaryHashMaxSizeBytes) return out;
      const cache = opts.hashCache ?? hashes;
      const key = fileKey(st);
      const known = cache.get(key);
      if (known) {
        out.binary_hash = known;
        return out;
      }
      let hash: string | undefined | null = null;
      // (another connection's hash of the same file is shared; if that connection left, this one hashes)
      while (hash === null && !ctx.signal?.aborted) {
        let pending = inFlight.get(key);
        if (!pending) {
          pending = hashFile(file, opts.binaryHashMaxSizeBytes, ctx.signal);
          inFlight.set(key, pending);
          const p = pending;
          void p.finally(() => inFlight.get(key) === p && inFlight.delete(key)).catch(() => {});
        }
        hash = await pending;
      }
      if (!hash) return out;
      out.binary_hash = hash;
      cache.set(key, hash);
      if (cache.size > HASH_CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
    } finally {
      await file.close();
    }
  } catch {
    // unreadable, or the connection closed while hashing: no hash
  }
  return out;
}

/** The hash of `file` (undefined: larger than `max`; null: `signal` aborted it). */
async function hashFile(
  file: import('node:fs/promises').FileHandle,
  max: number,
  signal: AbortSignal | undefined,
): Promise<string | undefined | null> {
  const release = await slot(signal);
  if (!release) return null;
  try {
    const hash = createHash('sha256');
    // (bounded read: the file may grow after the stat)
    let left = max === -1 ? Infinity : max;
    const buf = Buffer.allocUnsafe(1024 * 1024);
    for (let pos = 0; ;) {
      if (signal?.aborted) return null;
      const { bytesRead } = await file.read(buf, 0, buf.length, pos);
      if (bytesRead === 0) break;
      pos += bytesRead;
      left -= bytesRead;
      if (left < 0) return undefined;
      hash.update(buf.subarray(0, bytesRead));
    }
    return hash.digest('hex');
  } finally {
    release();
  }
}
