import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '../src/api/client.js';
import { readIdentityFile } from '../src/auth/local-identity.js';

export const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '../src/cli');

function processTree(pid: number): number[] {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    // no children file: no children
  }
  return [pid, ...children.flatMap(processTree)];
}

/** CPU time (user + system) one process has used so far, in ms. */
export function processCpuMs(pid: number): number {
  // fields 14 and 15 of /proc/PID/stat (after the parenthesised name): utime, stime in clock ticks (USER_HZ, 100 on Linux)
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

export interface BenchCluster {
  dir: string;
  dataDir: string;
  addr: string;
  pin: string;
  proc: ChildProcess;
  admin: ApiClient;
  caCerts: string[];
  rssMb(): number;
  /** CPU time (user + system) the Auth Service's processes have used so far, in ms. */
  cpuMs(): number;
  stop(opts?: { keep?: boolean }): Promise<void>;
}

/** A real `mwi start` in its own process (its own event loop), SQLite in a temp dir. */
export async function startAuth(dataDir?: string, mwiYaml?: string): Promise<BenchCluster> {
  const dir = dataDir ? dirname(dataDir) : mkdtempSync(join(tmpdir(), 'mwi-bench-'));
  // (a config file, when given, lives next to the data dir)
  const dd = dataDir ?? join(dir, 'auth');
  const config = mwiYaml ? join(dir, 'mwi.yaml') : undefined;
  if (config) writeFileSync(config, mwiYaml!);
  // BENCH_PROFILE=DIR: the Auth Service writes a V8 CPU profile there when it stops
  const prof = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
  const proc = spawn(process.execPath, [...prof, join(CLI, 'mwi.js'), 'start', ...(config ? ['-c', config] : []), '--data-dir', dd, '--listen', '127.0.0.1:0', '--cluster-name', 'bench', '--workers', process.env.BENCH_WORKERS ?? '1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MWI_LOG_LEVEL: 'warn' },
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => process.stderr.write(d));
  const m = await new Promise<RegExpExecArray>((res, rej) => {
    const t = setInterval(() => {
      const mm = /listening on (\S+)(?: \(\d+ workers\))?\nCA pin: (\S+)/.exec(out);
      if (mm) {
        clearInterval(t);
        res(mm);
      }
    }, 20);
    proc.once('exit', (c) => rej(new Error(`mwi start exited ${c}: ${out}`)));
  });
  const id = readIdentityFile(join(dd, 'admin', 'identity.json'))!;
  const admin = new ApiClient({ addrs: [m[1]!], tls: { ca: id.ca_certs, cert: id.cert, key: id.key } });
  return {
    dir,
    dataDir: dd,
    addr: m[1]!,
    pin: m[2]!,
    proc,
    admin,
    caCerts: id.ca_certs,
    // the primary and, with --workers, every worker process
    cpuMs: () => processTree(proc.pid!).reduce((sum, pid) => sum + processCpuMs(pid), 0),
    rssMb: () => processTree(proc.pid!).reduce((sum, pid) => sum + Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024, 0),
    async stop(opts = {}) {
      admin.close();
      proc.kill('SIGTERM');
      await new Promise((r) => (proc.exitCode !== null ? r(null) : proc.once('exit', r)));
      if (!dataDir && !opts.keep) rmSync(dir, { recursive: true, force: true });
    },
  };
}
