import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiClient } from '../src/api/client.js';
import { readIdentityFile } from '../src/api/local.js';
import { launchAuth } from '../test/helpers/launch-auth.js';

const PROFILE_DIR = process.env.BENCH_PROFILE;
/** BENCH_PROFILE=DIR: Node.js flags that make a process write a V8 CPU profile there when it exits. */
export const PROFILE_ARGS = PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}`] : [];

function processTree(pid: number): number[] {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    // no children file: no children
  }
  return [pid, ...children.flatMap(processTree)];
}

/** Resident memory of one process, in MB. */
export function processRssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

/** CPU time (user + system) one process has used so far, in ms. */
export function processCpuMs(pid: number): number {
  // fields 14 and 15 of /proc/PID/stat (after the parenthesised name): utime, stime in clock
  // ticks (USER_HZ, 100 on Linux)
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

export interface BenchCluster {
  dir: string;
  dataDir: string;
  addr: string;
  pin: string;
  admin: ApiClient;
  caCerts: string[];
  rssMb(): number;
  /** CPU time (user + system) the Auth Service's processes have used so far, in ms. */
  cpuMs(): number;
  /** Stops the Auth Service; its data dir stays. */
  halt(): Promise<void>;
  /** Stops it and removes its temp dir (unless started on a given data dir). */
  stop(): Promise<void>;
}

/**
 * A real `mwi start` in its own process (its own event loop), SQLite in a temp dir or on
 * `dataDir`; `--workers` from BENCH_WORKERS (default 1), warnings and errors on our stderr.
 */
export async function startAuth(dataDir?: string, mwiYaml?: string): Promise<BenchCluster> {
  const auth = await launchAuth({
    clusterName: 'bench',
    mwiYaml,
    dataDir,
    prefix: 'bench',
    args: ['--workers', process.env.BENCH_WORKERS ?? '1'],
    env: { MWI_LOG_LEVEL: 'warn' },
    nodeArgs: PROFILE_ARGS,
    echoStderr: true,
  });
  const id = readIdentityFile(join(auth.dataDir, 'admin', 'identity.json'))!;
  const admin = new ApiClient({ addrs: [auth.addr], tls: { ca: id.ca_certs, cert: id.cert, key: id.key } });
  // the primary and, with --workers, every worker process
  const tree = () => processTree(auth.proc.pid!);
  return {
    dir: auth.dir,
    dataDir: auth.dataDir,
    addr: auth.addr,
    pin: auth.caPin,
    admin,
    caCerts: id.ca_certs,
    cpuMs: () => tree().reduce((sum, pid) => sum + processCpuMs(pid), 0),
    rssMb: () => tree().reduce((sum, pid) => sum + processRssMb(pid), 0),
    async halt() {
      admin.close();
      await auth.halt();
    },
    async stop() {
      admin.close();
      await auth.stop();
    },
  };
}
