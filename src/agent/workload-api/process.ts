import { closeSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { loadKoffi } from '../../util/native.js';

/**
 * A connected workload's process, pinned at accept: its pid, the kernel's start time of that pid
 * (field 22 of /proc/PID/stat, which a new process reusing the pid does not share), a pidfd (which
 * refers to this process and no other, and becomes readable once it exits) and the executable it
 * ran when attested (device and inode of /proc/PID/exe). `check()` says whether the pid is still
 * that process running that executable: a process that exited (its pid free for reuse) or that
 * exec'd another program after the attestation is not the workload that was attested.
 */
export interface ProcessPin {
  pid: number;
  starttime: string;
  /** -1 when the kernel has no pidfd_open (before Linux 5.3): the start time alone then. */
  pidfd: number;
  /** The executable at attestation; undefined when tbot may not inspect the process. */
  exe?: { dev: number; ino: number } | undefined;
}

const SYS_PIDFD_OPEN = 434;
const POLLIN = 1;

interface Sys {
  syscall: (...args: unknown[]) => number;
  poll: (fds: { fd: number; events: number; revents: number }[], n: number, timeout: number) => number;
}
let sys: Sys | undefined;

function bind(): Sys {
  if (sys) return sys;
  const koffi = loadKoffi();
  const libc = koffi.load('libc.so.6');
  const pollfd = koffi.struct('mwi_pollfd', { fd: 'int', events: 'short', revents: 'short' });
  return (sys = {
    syscall: libc.func('long syscall(long number, ...)') as unknown as Sys['syscall'],
    poll: libc.func('poll', 'int', [
      koffi.inout(koffi.pointer(pollfd)),
      'unsigned long',
      'int',
    ]) as unknown as Sys['poll'],
  });
}

/** The start time (clock ticks after boot) of `pid`, or undefined when there is no such process. */
export function startTime(pid: number, procRoot = '/proc'): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`${procRoot}/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // the command name (field 2) is in parentheses and may hold spaces and parentheses: count after the last ')'
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19]; // field 22 of the whole line
}

/** The executable `pid` runs (what /proc/PID/exe resolves to), or undefined when tbot may not see it. */
export function exeOf(pid: number, procRoot = '/proc'): { dev: number; ino: number } | undefined {
  try {
    const st = statSync(`${procRoot}/${pid}/exe`);
    return { dev: st.dev, ino: st.ino };
  } catch {
    return undefined;
  }
}

/** pidfd_open(pid, 0): a descriptor of this process, or -1. */
function pidfdOpen(pid: number): number {
  try {
    return Number(bind().syscall(SYS_PIDFD_OPEN, 'int', pid, 'unsigned int', 0));
  } catch {
    return -1;
  }
}

/** True once the process of `pidfd` has exited (its pidfd polls readable). */
export function pidfdExited(pidfd: number): boolean {
  if (pidfd < 0) return false;
  const fds = [{ fd: pidfd, events: POLLIN, revents: 0 }];
  // (an error, such as EINTR, says nothing: the start time is checked next anyway)
  return bind().poll(fds, 1, 0) > 0 && fds[0]!.revents !== 0;
}

/** Pins `pid` (start time, pidfd, executable); undefined when the process is gone already. */
export function pinProcess(pid: number, procRoot = '/proc'): ProcessPin | undefined {
  const starttime = startTime(pid, procRoot);
  if (starttime === undefined) return undefined;
  const pidfd = procRoot === '/proc' ? pidfdOpen(pid) : -1;
  const pin: ProcessPin = { pid, starttime, pidfd, exe: exeOf(pid, procRoot) };
  // (the pidfd was opened after the start time was read: the same process only if the start time still is)
  if (startTime(pid, procRoot) !== starttime) {
    releasePin(pin);
    return undefined;
  }
  return pin;
}

/**
 * Why `pin` no longer names the attested workload (it exited, its pid is another process's now,
 * or it exec'd another executable), or undefined when it still does.
 */
export function checkPin(pin: ProcessPin, procRoot = '/proc'): string | undefined {
  if (pidfdExited(pin.pidfd)) return `the process ${pin.pid} exited`;
  const now = startTime(pin.pid, procRoot);
  if (now === undefined) return `the process ${pin.pid} exited`;
  if (now !== pin.starttime) return `the process ${pin.pid} exited (its pid is another process's now)`;
  if (pin.exe) {
    const exe = exeOf(pin.pid, procRoot);
    if (!exe) return `the process ${pin.pid} exited`;
    if (exe.dev !== pin.exe.dev || exe.ino !== pin.exe.ino)
      return `the process ${pin.pid} runs another executable than the one attested (an exec after it connected)`;
  }
  return undefined;
}

export function releasePin(pin: ProcessPin): void {
  if (pin.pidfd < 0) return;
  try {
    closeSync(pin.pidfd);
  } catch {
    // closed already
  }
  pin.pidfd = -1;
}

/** The mount namespace of `pid` (e.g. `mnt:[4026531841]`), or undefined. */
export function mountNamespace(pid: number | 'self', procRoot = '/proc'): string | undefined {
  try {
    return readlinkSync(`${procRoot}/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}
