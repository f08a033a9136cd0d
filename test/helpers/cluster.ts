import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, exited, spawnCli, tempDir, waitFor, type RunResult } from './procs.js';

export interface TestCluster {
  dir: string;
  dataDir: string;
  addr: string;
  caPin: string;
  proc: ChildProcess & { out: () => string };
  tctl(args: string[]): Promise<RunResult>;
  /** tctl that must succeed; returns stdout. */
  tctlOk(args: string[]): Promise<string>;
  /** Creates role `name` with `logins`, and a bot with it; returns the bot's single-use token. */
  addBot(bot: string, logins: string[], opts?: { roleTtl?: string }): Promise<string>;
  /** Stops the Auth Service (SIGTERM) without removing its data. */
  halt(): Promise<void>;
  /** Starts it again on the same address and data dir. */
  resume(): Promise<void>;
  /** Audit events, oldest first. */
  audit(): Array<Record<string, any>>;
  stop(): Promise<void>;
}

/** Starts a real `mwi start` on 127.0.0.1:0 with SQLite in a temp dir. */
async function launch(dataDir: string, listen: string, name: string, config?: string, extra: string[] = []) {
  const proc = spawnCli('mwi', ['start', ...(config ? ['-c', config] : []), '--data-dir', dataDir, '--listen', listen, '--cluster-name', name, ...extra]);
  const m = await waitFor('mwi start', () => {
    if (proc.exitCode !== null) throw new Error(`mwi start exited: ${proc.out()}`);
    return /listening on (\S+)(?: \(\d+ workers\))?\nCA pin: (sha256:[0-9a-f]{64})/.exec(proc.out());
  });
  return { proc, addr: m[1]!, caPin: m[2]! };
}

export async function startCluster(name = 'test-cluster', mwiYaml?: string, extraArgs: string[] = []): Promise<TestCluster> {
  const tmp = tempDir('cluster');
  const dataDir = join(tmp.path, 'auth');
  const config = mwiYaml ? join(tmp.path, 'mwi.yaml') : undefined;
  if (config) writeFileSync(config, mwiYaml!);
  let { proc, addr, caPin } = await launch(dataDir, '127.0.0.1:0', name, config, extraArgs);
  const tctl = (args: string[]) => cli('tctl', ['--data-dir', dataDir, ...args]);
  const tctlOk = async (args: string[]) => {
    const r = await tctl(args);
    if (r.code !== 0) throw new Error(`tctl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };
  const cluster: TestCluster = {
    dir: tmp.path,
    dataDir,
    addr,
    caPin,
    proc,
    async halt() {
      proc.kill('SIGTERM');
      await exited(proc);
    },
    async resume() {
      ({ proc } = await launch(dataDir, addr, name, config, extraArgs));
      cluster.proc = proc;
    },
    tctl,
    tctlOk,
    async addBot(bot, logins, opts = {}) {
      const role = join(tmp.path, `role-${bot}.yaml`);
      writeFileSync(
        role,
        `kind: role\nversion: v7\nmetadata: { name: ${bot}-role }\nspec:\n  options: { ${opts.roleTtl ? `max_session_ttl: ${opts.roleTtl}` : ''} }\n  allow:\n    logins: ${JSON.stringify(logins)}\n`,
      );
      await tctlOk(['create', '-f', role]);
      const out = JSON.parse(await tctlOk(['bots', 'add', bot, '--roles', `${bot}-role`, '--format', 'json'])) as { token: string };
      return out.token;
    },
    audit() {
      // the main log and the refusals log (refused joins and challenges), merged by time
      const read = (name: string) => (existsSync(join(dataDir, 'audit', name)) ? readFileSync(join(dataDir, 'audit', name), 'utf8') : '');
      const events = `${read('events.log')}${read('refusals.log')}`.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>);
      return events.sort((x, y) => (String(x.time) < String(y.time) ? -1 : String(x.time) > String(y.time) ? 1 : 0));
    },
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await exited(proc);
      }
      tmp.cleanup();
    },
  };
  return cluster;
}

/** Common tbot flags for a cluster. */
export function tbotFlags(c: TestCluster, token: string, storage: string, out?: string): string[] {
  return ['--auth-server', c.addr, '--token', token, '--ca-pin', c.caPin, '--data-dir', storage, ...(out ? ['--destination-dir', out] : [])];
}
