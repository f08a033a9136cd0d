// The scene of a Workload API test: a real Auth Service with workload_identity resources, a bot
// whose role grants them, a tbot daemon serving the Workload API on a unix socket, and the
// independent Python client (python3-grpcio, stubs compiled with grpc_tools.protoc).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startCluster, type TestCluster } from './cluster.js';
import { exited, REPO_ROOT, run, spawnCli, tempDir, waitFor, type CliProcess, type RunResult } from './procs.js';
import { workloadRoleBot } from './workload-identity.js';

/** The Workload API suites run workloads under other uids (setpriv) and make cgroups: root only (CI runs as root). */
export const ROOT_ONLY = {
  skip: process.getuid?.() !== 0 ? 'needs root: workloads run under other uids with setpriv' : false,
} as const;

/** Debian's python3 (the first python3 on PATH may be another build without python3-grpcio). */
export const PYTHON = '/usr/bin/python3';

/** Compiles test/fixtures/workloadapi.proto for Python into `dir` (readable by every user), with the client. */
export async function pythonClient(dir: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const fixtures = join(REPO_ROOT, 'test', 'fixtures');
  const r = await run(PYTHON, [
    '-m',
    'grpc_tools.protoc',
    '-I',
    fixtures,
    `--python_out=${dir}`,
    `--grpc_python_out=${dir}`,
    join(fixtures, 'workloadapi.proto'),
  ]);
  assert.equal(r.code, 0, `grpc_tools.protoc: ${r.stderr}`);
  copyFileSync(join(fixtures, 'workload_api_client.py'), join(dir, 'workload_api_client.py'));
  chmodSync(dir, 0o755);
  for (const f of readdirSync(dir)) chmodSync(join(dir, f), 0o644);
  return dir;
}

/** Runs the Python client, as `uid`:`gid` when given (setpriv: the kernel credentials, so SO_PEERCRED, change). */
export function workload(
  client: string,
  socket: string,
  args: string[],
  as?: { uid: number; gid: number },
  timeoutMs = 60_000,
): Promise<RunResult> {
  const py = [PYTHON, join(client, 'workload_api_client.py'), socket, ...args];
  const cmd = as ? ['setpriv', `--reuid=${as.uid}`, `--regid=${as.gid}`, '--clear-groups', ...py] : py;
  return run(cmd[0]!, cmd.slice(1), { env: { PYTHONPATH: client, PYTHONDONTWRITEBYTECODE: '1' }, timeoutMs });
}

/**
 * Runs the Python client inside the cgroup directory `cgroup` (a path under /sys/fs/cgroup/...: the
 * shell moves itself there, then execs the client, which keeps its pid), as a container's process is.
 */
export function workloadInCgroup(client: string, socket: string, args: string[], cgroup: string): Promise<RunResult> {
  const py = [PYTHON, join(client, 'workload_api_client.py'), socket, ...args].map((a) => `'${a}'`).join(' ');
  return run('sh', ['-c', `echo $$ > '${cgroup}/cgroup.procs' && exec ${py}`], {
    env: { PYTHONPATH: client, PYTHONDONTWRITEBYTECODE: '1' },
  });
}

/** The Python client as a running process; `lines()` is what it printed so far. */
export function spawnWorkload(
  client: string,
  socket: string,
  args: string[],
  as: { uid: number; gid: number },
): ChildProcess & { lines: () => Record<string, any>[] } {
  const py = [PYTHON, join(client, 'workload_api_client.py'), socket, ...args];
  const cmd = ['setpriv', `--reuid=${as.uid}`, `--regid=${as.gid}`, '--clear-groups', ...py];
  const child = spawn(cmd[0]!, cmd.slice(1), {
    env: { ...process.env, PYTHONPATH: client, PYTHONDONTWRITEBYTECODE: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', () => {});
  const complete = () => out.split('\n').slice(0, -1).filter(Boolean);
  return Object.assign(child, { lines: () => complete().map((l) => JSON.parse(l) as Record<string, any>) });
}

/** The JSON lines a client printed. */
export function lines(r: RunResult): Record<string, any>[] {
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, any>);
}

/** A bot `bot` whose role grants workload identities labelled `team: <team>`; returns its token. */
export const addWorkloadBot = workloadRoleBot;

/**
 * The start of a Workload API scene: a temporary directory every user may read (workloads run
 * under other uids and reach the socket and the client's files there), the Python client, a cluster.
 */
export async function workloadScene(
  prefix: string,
  cluster: string,
): Promise<{ tmp: { path: string; cleanup: () => void }; client: string; c: TestCluster }> {
  const tmp = tempDir(prefix);
  chmodSync(tmp.path, 0o755);
  try {
    const client = await pythonClient(join(tmp.path, 'py'));
    return { tmp, client, c: await startCluster(cluster) };
  } catch (err) {
    tmp.cleanup();
    throw err;
  }
}

/**
 * tbot.yaml in a new directory `dir` for a new bot `bot` (its role grants `team`), serving the
 * Workload API on `socket` for the workload_identity `name`, with `extra` lines of that service.
 */
export async function workloadApiTbot(
  c: TestCluster,
  a: { bot: string; team: string; dir: string; socket: string; name: string },
  extra = '',
): Promise<string> {
  const token = await addWorkloadBot(c, a.bot, a.team);
  mkdirSync(a.dir);
  return tbotYaml(
    c,
    token,
    a.dir,
    `  - type: workload-identity-api\n    listen: unix://${a.socket}\n    selector: { name: ${a.name} }\n${extra}`,
  );
}

/** tbot.yaml (v2) for a daemon joining `c` with `token`, storing in `dir`, with `services` (YAML list items). */
export function tbotYaml(c: TestCluster, token: string, dir: string, services: string): string {
  const file = join(dir, 'tbot.yaml');
  writeFileSync(
    file,
    `version: v2\nauth_server: ${c.addr}\nonboarding:\n  join_method: token\n  token: ${token}\n` +
      `  ca_pins: ["${c.caPin}"]\nstorage:\n  type: directory\n  path: ${join(dir, 'storage')}\n` +
      `services:\n${services}`,
  );
  return file;
}

/**
 * Starts `tbot start -c FILE` and waits until the Workload API listens; `binary`: a single-file tbot
 * (npm run build:binary), run with nothing from the environment (`env -i`: no Node.js to be found).
 */
export async function startTbot(file: string, binary?: string, env?: NodeJS.ProcessEnv): Promise<CliProcess> {
  const tbot = binary ? spawnBare(binary, ['start', '-c', file]) : spawnCli('tbot', ['start', '-c', file], env);
  try {
    await waitFor('the Workload API to listen', () => /workload-identity-api: listening/.test(tbot.out()), 30_000);
  } catch (err) {
    tbot.kill('SIGKILL');
    throw new Error(`${String(err)}\n${tbot.out()}`, { cause: err });
  }
  return tbot;
}

function spawnBare(program: string, args: string[]): CliProcess {
  const child = spawn('env', ['-i', 'PATH=/nonexistent', program, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return Object.assign(child, { out: () => out });
}

/** Stops tbot with SIGTERM; it must exit 0. */
export async function stopTbot(tbot: CliProcess | undefined): Promise<void> {
  if (!tbot || tbot.exitCode !== null) return;
  tbot.kill('SIGTERM');
  const code = await exited(tbot, 20_000);
  assert.equal(code, 0, tbot.out());
}
