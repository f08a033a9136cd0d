import { randomBytes } from 'node:crypto';
import { chmodSync, lstatSync, realpathSync, renameSync, rmSync, statSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { MwiError } from '../../errors.js';
import { checkDirTrusted } from '../../util/fs.js';

/** The Workload API socket's mode when tbot.yaml sets none: any local process may ask, attestation decides. */
export const DEFAULT_SOCKET_MODE = 0o666;

/** True when something accepts connections on the unix socket `path` (a live tbot, or anyone else). */
function live(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Checks the socket's directory and every directory above it (sshd's StrictModes): each must be
 * owned by root or by tbot's user and writable by no one else (neither group- nor other-writable),
 * or another user could rename a directory on the way, or replace the socket with their own, and
 * answer workloads in tbot's name. Above the socket's directory, a sticky directory (such as /tmp,
 * root's, mode 1777) is accepted: no one may rename or remove the entries others own in it. The
 * socket's own directory may not be one (anyone could bind the socket's name first).
 */
function checkParent(path: string, field: string): void {
  const parent = dirname(path);
  let dir: string;
  try {
    dir = realpathSync(parent);
  } catch {
    throw new MwiError('BAD_CONFIG', `the socket's directory ${parent} does not exist: create it first`, { field });
  }
  const me = process.getuid?.() ?? 0;
  for (let d = dir, first = true; ; first = false) {
    const st = statSync(d);
    if (!st.isDirectory()) throw new MwiError('BAD_CONFIG', `${d} is not a directory`, { field });
    const why =
      st.uid !== 0 && st.uid !== me
        ? `is owned by uid ${st.uid} (neither root nor tbot's user)`
        : (st.mode & 0o022) === 0
          ? undefined
          : first && (st.mode & 0o002) !== 0
            ? 'is writable by every user'
            : first
              ? 'is writable by its group'
              : (st.mode & 0o1000) === 0
                ? `is writable by ${(st.mode & 0o002) !== 0 ? 'every user' : 'its group'} without the sticky bit`
                : undefined;
    if (why)
      throw new MwiError(
        'BAD_CONFIG',
        `${first ? `the socket's directory ${d}` : `${d}, above the socket's directory,`} ${why}: another user could ` +
          "replace the socket (or bind its name first) and answer workloads in tbot's name; use a directory " +
          'that only root or tbot may write, such as /run/tbot (mode 0755), on such a path',
        { field },
      );
    if (d === '/') break;
    d = dirname(d);
  }
  // the same rule along the path as given (a symlink on the way that another user owns, or sits in
  // a directory they may write, could be pointed elsewhere after this check)
  checkDirTrusted(parent, field);
}

/**
 * Checks that tbot may listen on `path`: its directory (checkParent), and no live socket or other
 * file there (a socket nothing accepts on, left by a dead tbot, may be replaced). Run before the
 * join too, so that a socket tbot cannot take costs no join token.
 */
export async function checkSocketPath(path: string, field: string): Promise<void> {
  checkParent(path, field);
  let existing;
  try {
    existing = lstatSync(path);
  } catch {
    return;
  }
  if (!existing.isSocket())
    throw new MwiError('BAD_CONFIG', `${path} exists and is not a socket: tbot replaces only a stale socket`, {
      field,
    });
  if (await live(path))
    throw new MwiError('BAD_CONFIG', `${path} is in use: another process (another tbot?) accepts connections on it`, {
      field,
    });
}

/**
 * Listens on the unix socket `path` with `mode`; connections go to `onConnection`. A socket file
 * left by a dead tbot (nothing accepts on it) is replaced; a live one, or any other kind of file,
 * is an error. The socket is made under a temporary name, given its mode, then renamed into
 * place, so that it never exists at `path` with another mode. `close()` removes it, if it is
 * still ours.
 */
export async function listenUnix(
  path: string,
  mode: number,
  field: string,
  onConnection: (socket: Socket) => void,
): Promise<{ server: Server; close(): Promise<void> }> {
  await checkSocketPath(path, field);
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}`);
  const server = createServer({ pauseOnConnect: true }, onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(tmp, () => {
      server.off('error', reject);
      resolve();
    });
  });
  let ino: number;
  try {
    chmodSync(tmp, mode);
    renameSync(tmp, path);
    ino = lstatSync(path).ino;
  } catch (cause) {
    server.close();
    rmSync(tmp, { force: true });
    throw new MwiError('BAD_CONFIG', `cannot create the socket ${path}: ${String(cause)}`, { field, cause });
  }
  return {
    server,
    close: () =>
      new Promise<void>((resolve) => {
        try {
          // (another tbot may have replaced a socket it found dead: leave that one alone)
          if (lstatSync(path).ino === ino) rmSync(path, { force: true });
        } catch {
          // gone already
        }
        server.close(() => resolve());
      }),
  };
}
