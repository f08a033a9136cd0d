import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  realpathSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { MwiError } from '../errors.js';

/**
 * Writes a file atomically: a temp file in the same directory, fsync, rename over the target,
 * fsync the directory. A reader sees the old content or the new, never a mix. The rename
 * replaces whatever name was there (a symlink included) and never writes through it.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
  fsyncDir(dir);
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Checks that a directory mwi keeps keys or credentials in can be changed by no one but this
 * user (and root): it must be owned by the effective user or root, and not be writable by group
 * or others. Whoever can write to it can plant a symlink or swap a file that mwi then reads or
 * writes, so a pre-existing directory is not trusted as it is (issue #9, finding 15). Reading by
 * a group is allowed: a destination may be shared with a reader. `st` is the directory's stat
 * (symlinks followed: the directory that counts is the one the path ends in).
 *
 * @throws MwiError BAD_CONFIG naming the path, what is wrong and the command that fixes it
 */
export function checkDirTrusted(dir: string, field: string, st: Stats = statSync(dir)): void {
  if (!st.isDirectory()) throw new MwiError('BAD_CONFIG', `${dir} exists and is not a directory`, { field });
  const uid = process.geteuid?.();
  if (uid !== undefined && st.uid !== uid && st.uid !== 0) {
    throw new MwiError(
      'BAD_CONFIG',
      `${dir} is owned by uid ${st.uid}, not by this user (uid ${uid}) or root: its owner could change what mwi ` +
        `reads and writes there; use a directory this user owns (chown ${uid} ${dir})`,
      { field },
    );
  }
  if ((st.mode & 0o022) !== 0) {
    const who = st.mode & 0o002 ? 'every user' : 'its group';
    throw new MwiError(
      'BAD_CONFIG',
      `${dir} is writable by ${who} (mode 0${(st.mode & 0o7777).toString(8)}): another user could plant or swap ` +
        `files mwi trusts; run "chmod 0700 ${dir}" (or chmod go-w to keep it readable)`,
      { field },
    );
  }
  checkAncestorsTrusted(dir, field, uid);
}

/**
 * The directories above `dir` must not let anyone else replace it: whoever can write to a parent
 * can rename `dir` away and put a symlink in its place between mwi's check and its writes (as
 * sshd's StrictModes, each ancestor is owned by this user or root, and writable by others only
 * with the sticky bit, as /tmp is: there nobody may rename an entry they do not own).
 */
function checkAncestorsTrusted(dir: string, field: string, uid: number | undefined): void {
  // every write resolves the path as given again, so the path as given is checked (a link on the
  // way, or the directory holding one, that someone else controls would let them point it
  // elsewhere after this check) and so is the path it resolves to now
  const given = resolve(dir).split(sep).filter(Boolean);
  for (let i = 1; i < given.length; i++) checkAncestor(`${sep}${given.slice(0, i).join(sep)}`, dir, field, uid);
  let cur = realpathSync(dir);
  for (;;) {
    const parent = dirname(cur);
    if (parent === cur) return;
    checkAncestor(parent, dir, field, uid);
    cur = parent;
  }
}

/** One directory (or link) above `dir`: owned by this user or root, and writable by others only when sticky. */
function checkAncestor(path: string, dir: string, field: string, uid: number | undefined): void {
  const st = lstatSync(path);
  if (uid !== undefined && st.uid !== uid && st.uid !== 0) {
    const what = st.isSymbolicLink() ? 'a symlink' : 'a directory';
    throw new MwiError(
      'BAD_CONFIG',
      `${path}, on the path to ${dir}, is ${what} owned by uid ${st.uid}: its owner could swap ${dir} for a link ` +
        `to somewhere else; use a directory whose parents this user or root owns`,
      { field },
    );
  }
  if (st.isDirectory() && (st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) {
    throw new MwiError(
      'BAD_CONFIG',
      `${path}, a parent of ${dir}, is writable by others (mode 0${(st.mode & 0o7777).toString(8)}) without the ` +
        `sticky bit: they could swap ${dir} for a link to somewhere else; run "chmod go-w ${path}"`,
      { field },
    );
  }
}

/**
 * Creates a directory (and parents) private to the owner (0700), or checks an existing one
 * with checkDirTrusted: a directory someone else can write to is refused, never used as it is.
 */
export function mkdirPrivate(dir: string, field = 'data_dir'): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  checkDirTrusted(dir, field);
}
