// One way to start a real Auth Service for tests and benchmarks alike: `mwi start` in a process
// of its own on loopback, port 0, its data dir (and mwi.yaml, if any) in a temp dir.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { exited, spawnCli, tempDir, waitFor, type CliProcess } from './procs.js';

export interface LaunchOptions {
  clusterName: string;
  /** mwi.yaml text, written next to the data dir and passed with `-c`. */
  mwiYaml?: string | undefined;
  /** More `mwi start` flags, e.g. `--workers 2`. */
  args?: string[];
  /** An existing data dir to start on (kept by `stop`); by default a new one in a temp dir. */
  dataDir?: string | undefined;
  /** Temp dir prefix (after `mwi-`). */
  prefix?: string;
  env?: NodeJS.ProcessEnv;
  /** Flags for Node.js itself, e.g. `--cpu-prof`. */
  nodeArgs?: string[];
  /** Copies its stderr to ours as it comes, as well as collecting it. */
  echoStderr?: boolean;
}

export interface LaunchedAuth {
  /** The directory holding the data dir and mwi.yaml. */
  dir: string;
  dataDir: string;
  /** HOST:PORT it listens on. */
  addr: string;
  caPin: string;
  /** The running process (a new one after `restart`). */
  readonly proc: CliProcess;
  /** Stops it (SIGTERM) and waits for the exit; the data stays. Plain functions, usable unbound. */
  halt: () => Promise<void>;
  /** Starts it again on the same address and data dir. */
  restart: () => Promise<void>;
  /** Halts it and removes the temp dir (unless the data dir was given). */
  stop: () => Promise<void>;
}

const READY = /listening on (\S+)(?: \(\d+ workers\))?\nCA pin: (sha256:[0-9a-f]{64})/;

/** Starts `mwi start` and resolves once it listens (what it prints then: address and CA pin). */
export async function launchAuth(opts: LaunchOptions): Promise<LaunchedAuth> {
  const tmp = opts.dataDir ? undefined : tempDir(opts.prefix ?? 'cluster');
  const dataDir = opts.dataDir ?? join(tmp!.path, 'auth');
  const dir = dirname(dataDir);
  const config = opts.mwiYaml ? join(dir, 'mwi.yaml') : undefined;
  if (config) writeFileSync(config, opts.mwiYaml!);
  const start = async (listen: string) => {
    const flags = ['--data-dir', dataDir, '--listen', listen, '--cluster-name', opts.clusterName, ...(opts.args ?? [])];
    const proc = spawnCli('mwi', ['start', ...(config ? ['-c', config] : []), ...flags], opts.env, opts.nodeArgs);
    if (opts.echoStderr) proc.stderr!.on('data', (d: Buffer) => process.stderr.write(d));
    const m = await waitFor('mwi start', () => {
      const end = proc.exitCode ?? proc.signalCode;
      if (end !== null) throw new Error(`mwi start exited (${end}): ${proc.out()}`);
      return READY.exec(proc.out());
    });
    return { proc, addr: m[1]!, caPin: m[2]! };
  };
  const first = await start('127.0.0.1:0');
  const { addr, caPin } = first;
  let proc = first.proc;
  const halt = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    await exited(proc);
  };
  return {
    dir,
    dataDir,
    addr,
    caPin,
    get proc() {
      return proc;
    },
    halt,
    async restart() {
      ({ proc } = await start(addr));
    },
    async stop() {
      await halt();
      tmp?.cleanup();
    },
  };
}
