import { randomBytes } from 'node:crypto';
import { chmodSync, lstatSync, renameSync, rmSync, statSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { MwiError } from '../../errors.js';

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
 * Checks the parent directory: it must exist, and no other user may swap entries in it (writable
 * by others without the sticky bit), or they could replace the socket with their own and answer
 * workloads in tbot's name.
 */
function checkParent(path: string, field: string): void {
  const dir = dirname(path);
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new MwiError('BAD_CONFIG', `the socket's directory ${dir} does not exist: create it first`, { field });
  }
  if (!st.isDirectory()) throw new MwiError('BAD_CONFIG', `${dir} is not a directory`, { field });
  if ((st.mode & 0o002) !== 0 && (st.mode & 0o1000) === 0)
    throw new MwiError(
      'BAD_CONFIG',
      `the socket's directory ${dir} is writable by every user without the sticky bit: another user could ` +
        "replace the socket and answer workloads in tbot's name; use a directory only tbot may write (or chmod +t)",
      { field },
    );
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
