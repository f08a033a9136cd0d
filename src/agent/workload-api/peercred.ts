import type { Socket } from 'node:net';
import { MwiError } from '../../errors.js';
import { loadKoffi } from '../../util/native.js';

/** The process at the other end of a unix socket, as the kernel recorded it at connect(2). */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;

type GetPeerCred = (fd: number, level: number, name: number, out: PeerCredentials, len: number[]) => number;
let getsockopt: GetPeerCred | undefined;

/** libc's getsockopt(2) typed for SO_PEERCRED's `struct ucred` (Linux: pid_t, uid_t, gid_t). */
function bind(): GetPeerCred {
  if (getsockopt) return getsockopt;
  const koffi = loadKoffi();
  const ucred = koffi.struct('mwi_ucred', { pid: 'int32', uid: 'uint32', gid: 'uint32' });
  const libc = koffi.load('libc.so.6');
  const fn = libc.func('getsockopt', 'int', ['int', 'int', 'int', koffi.out(koffi.pointer(ucred)), 'uint32_t *']);
  return (getsockopt = fn as unknown as GetPeerCred);
}

/**
 * SO_PEERCRED of an accepted unix socket. The kernel fills it at connect(2): a workload cannot
 * claim another process's credentials (unlike anything it could send over the socket).
 */
export function peerCredentials(socket: Socket): PeerCredentials {
  if (process.platform !== 'linux') throw new MwiError('BAD_CONFIG', 'workload attestation needs Linux (SO_PEERCRED)');
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new TypeError('socket without a file descriptor');
  const out: PeerCredentials = { pid: 0, uid: 0, gid: 0 };
  const len = [12];
  if (bind()(fd, SOL_SOCKET, SO_PEERCRED, out, len) !== 0)
    throw new MwiError('INTERNAL', 'getsockopt(SO_PEERCRED) failed on the Workload API socket');
  return { pid: out.pid, uid: out.uid, gid: out.gid };
}
