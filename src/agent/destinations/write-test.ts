import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { MwiError } from '../../errors.js';
import { ioReason } from '../../util/io-reason.js';

/** The write test's directory (Teleport's tbot also writes a `.write-test` in its destinations). */
export const WRITE_TEST_PREFIX = '.write-test-';

/**
 * Any other failure, its code once: ioReason words the common ones, and Node's own messages
 * already start with the code (`EIO: i/o error, write`), so it is not put in front again.
 */
function otherReason(err: unknown): string {
  const reason = ioReason(err);
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code && !reason.includes(code) ? `${code}: ${reason}` : reason;
}

/**
 * What a failed file system call means for the person who configured `dir`, as a BAD_CONFIG
 * naming `field`: the cause (permissions, a file on the path, a read-only or full file system)
 * and what fixes it. `op` says what tbot was doing ("create", "write in").
 */
export function cannotWrite(err: unknown, dir: string, field: string, op: string): MwiError {
  const e = err as NodeJS.ErrnoException;
  const uid = process.geteuid?.();
  const as = uid === undefined ? '' : ` (tbot runs as uid ${uid})`;
  let why: string;
  switch (e.code) {
    case 'EACCES':
    case 'EPERM':
      why =
        `permission denied${as}: give this user write access to ${dir} (or its parent, to create it), ` +
        'or choose another path';
      break;
    case 'ENOTDIR':
      why = `a component of ${dir} is a file, not a directory: choose another path`;
      break;
    case 'EROFS':
      why = `${dir} is on a read-only file system: choose a writable path`;
      break;
    case 'ENOSPC':
    case 'EDQUOT':
      why = `no space left on the file system of ${dir}`;
      break;
    default:
      why = otherReason(err);
  }
  return new MwiError('BAD_CONFIG', `cannot ${op} ${dir}: ${why}`, { field, cause: err });
}

/**
 * Does in `dir`, on a throwaway test directory, every kind of step a write of a file set takes
 * (make a directory, create and write a file, set its mode, rename it, make a symlink and rename
 * it over another name), then removes it. tbot runs it at start, before a join can spend a token:
 * a destination that cannot be written fails here, not after the join.
 *
 * @throws MwiError BAD_CONFIG naming `field`, from cannotWrite
 */
export function writeTest(dir: string, field: string): void {
  const test = join(dir, `${WRITE_TEST_PREFIX}${randomBytes(4).toString('hex')}`);
  try {
    mkdirSync(test, { mode: 0o700 });
    const file = join(test, 'file');
    const fd = openSync(file, 'wx', 0o600);
    try {
      writeSync(fd, 'tbot write test\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(file, 0o644);
    renameSync(file, join(test, 'renamed'));
    symlinkSync('renamed', join(test, 'link.tmp'));
    renameSync(join(test, 'link.tmp'), join(test, 'link'));
  } catch (err) {
    throw cannotWrite(err, dir, field, 'write in');
  } finally {
    try {
      rmSync(test, { recursive: true, force: true });
    } catch {
      // what could not be made cannot be removed either; the error above says why
    }
  }
}
