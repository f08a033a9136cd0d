import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  lstatSync,
  openSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { MwiError } from '../../errors.js';
import type { Logger } from '../../util/log.js';

/** The lock file in a directory storage. */
export const LOCK_FILE = 'lock';

/** A lock this process holds; `release` is idempotent and also runs when the process exits. */
export interface HeldLock {
  readonly path: string;
  release(): void;
}

/**
 * When process `pid` started, in clock ticks since boot (field 22 of /proc/PID/stat), where the
 * system has /proc: with the PID it names one process, not whichever reuses its number later.
 */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) is in parentheses and may hold spaces: count from the last ")"
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

interface Holder {
  pid: number;
  start: string | undefined;
  /** The directory the lock was taken in (`DEV:INO`): a copied storage carries its original's lock. */
  dir: string | undefined;
  /** The lock file's inode, to remove only the file that was read. */
  ino: number;
}

/** `DEV:INO` of the directory holding `path`: the same for every path to it, another for a copy. */
function dirId(path: string): string {
  const st = statSync(dirname(path));
  return `${st.dev}:${st.ino}`;
}

/** The lock file's holder as written by lockText; undefined if the file vanished meanwhile. */
function readHolder(path: string): Holder | undefined {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const [pid, ...lines] = readFileSync(fd, 'utf8').split('\n');
    const field = (key: string) => lines.find((l) => l.startsWith(`${key} `))?.slice(key.length + 1);
    return { pid: Number(pid), start: field('start'), dir: field('dir'), ino: fstatSync(fd).ino };
  } finally {
    closeSync(fd);
  }
}

/**
 * Whether the holder still runs: its PID exists (EPERM: it does, as another user) and, where
 * both start times are known, is the process that wrote the lock. Our own PID is a leftover of a
 * previous life of this PID (a container restarted: tbot is often PID 1 again).
 */
function running(h: Holder): boolean {
  if (!Number.isSafeInteger(h.pid) || h.pid <= 0 || h.pid === process.pid) return false;
  try {
    process.kill(h.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const now = h.start === undefined ? undefined : startTime(h.pid);
  return now === undefined || now === h.start;
}

function lockText(dir: string): string {
  const start = startTime(process.pid);
  return `${process.pid}\n${start === undefined ? '' : `start ${start}\n`}dir ${dir}\n`;
}

/**
 * Takes the lock file at `path`: created with O_EXCL, holding this process's PID, its start time
 * and the directory's identity. A lock whose holder still runs is refused with "storage in use by
 * PID N", naming `field`; one left by a process that no longer runs (killed, or the machine
 * crashed), or copied along with the storage from another directory, is taken over with a
 * warning. Node.js has no flock(2); a PID file is what works without a native module. Its limit:
 * a holder in another PID namespace (another container on a shared volume) looks dead.
 *
 * @throws MwiError BAD_CONFIG naming `field`
 */
export function acquireLockFile(path: string, field: string, log?: Logger): HeldLock {
  const here = dirId(path);
  const text = lockText(here);
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      try {
        writeSync(fd, text);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      return held(path, text);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = readHolder(path);
    if (!holder) continue; // released meanwhile
    const copied = holder.dir !== undefined && holder.dir !== here;
    if (!copied && running(holder)) {
      throw new MwiError(
        'BAD_CONFIG',
        `storage in use by PID ${holder.pid} (${path}): one storage serves one tbot (two would renew the same ` +
          `identity, and the generation counter would lock it for both); stop PID ${holder.pid}, or give this ` +
          'tbot a storage of its own',
        { field },
      );
    }
    const why = copied
      ? 'copied with the storage from another directory (a copy, or a restored backup)'
      : 'left by a tbot that no longer runs (killed, or the machine restarted)';
    log?.warn(`taking over a storage lock ${why}`, {
      lock: path,
      pid: Number.isSafeInteger(holder.pid) ? holder.pid : 'unreadable',
    });
    // remove the file that was read, not one a contender put there since
    try {
      if (lstatSync(path).ino === holder.ino) unlinkSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  throw new MwiError('BAD_CONFIG', `cannot take the storage lock ${path}: other processes keep taking it`, { field });
}

function held(path: string, text: string): HeldLock {
  let done = false;
  const release = (): void => {
    if (done) return;
    done = true;
    process.removeListener('exit', release);
    try {
      // only our own: a lock taken over while this process was stopped (SIGSTOP) is not ours to remove
      if (readFileSync(path, 'utf8') === text) unlinkSync(path);
    } catch {
      // already gone
    }
  };
  // an exit on any path (an error, process.exit) releases it; SIGKILL leaves it for a takeover
  process.on('exit', release);
  return { path, release };
}
