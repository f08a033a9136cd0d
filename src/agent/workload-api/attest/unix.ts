import { createHash } from 'node:crypto';
import { open, readlink } from 'node:fs/promises';
import type { PeerCredentials } from '../peercred.js';
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

/** How many executables' hashes are kept: beyond it, the oldest goes. */
const HASH_CACHE_ENTRIES = 256;
const hashes = new Map<string, string>();

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
 */
export async function attestUnix(cred: PeerCredentials, opts: UnixAttestorOptions): Promise<UnixAttestation> {
  const exe = `${opts.procRoot ?? '/proc'}/${cred.pid}/exe`;
  const out: UnixAttestation = { attested: true, pid: cred.pid, uid: cred.uid, gid: cred.gid };
  try {
    out.binary_path = await readlink(exe);
  } catch {
    return out;
  }
  try {
    const file = await open(exe, 'r');
    try {
      const st = await file.stat();
      if (opts.binaryHashMaxSizeBytes !== -1 && st.size > opts.binaryHashMaxSizeBytes) return out;
      const cache = opts.hashCache ?? hashes;
      const key = fileKey(st);
      const known = cache.get(key);
      if (known) {
        out.binary_hash = known;
        return out;
      }
      const hash = createHash('sha256');
      // (bounded read: the file may grow after the stat)
      let left = opts.binaryHashMaxSizeBytes === -1 ? Infinity : opts.binaryHashMaxSizeBytes;
      for await (const chunk of file.createReadStream({ autoClose: false }) as AsyncIterable<Buffer>) {
        left -= chunk.length;
        if (left < 0) return out;
        hash.update(chunk);
      }
      out.binary_hash = hash.digest('hex');
      cache.set(key, out.binary_hash);
      if (cache.size > HASH_CACHE_ENTRIES) cache.delete(cache.keys().next().value!);
    } finally {
      await file.close();
    }
  } catch {
    // unreadable: no hash
  }
  return out;
}
