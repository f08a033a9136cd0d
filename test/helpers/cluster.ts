import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { launchAuth } from './launch-auth.js';
import { cli, type CliProcess, type RunResult } from './procs.js';

export interface TestCluster {
  dir: string;
  dataDir: string;
  addr: string;
  caPin: string;
  readonly proc: CliProcess;
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
export async function startCluster(
  name = 'test-cluster',
  mwiYaml?: string,
  extraArgs: string[] = [],
): Promise<TestCluster> {
  const auth = await launchAuth({ clusterName: name, mwiYaml, args: extraArgs });
  const { dir, dataDir } = auth;
  const tctl = (args: string[]) => cli('tctl', ['--data-dir', dataDir, ...args]);
  const tctlOk = async (args: string[]) => {
    const r = await tctl(args);
    if (r.code !== 0) throw new Error(`tctl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };
  return {
    dir,
    dataDir,
    addr: auth.addr,
    caPin: auth.caPin,
    get proc() {
      return auth.proc;
    },
    halt: auth.halt,
    resume: auth.restart,
    tctl,
    tctlOk,
    async addBot(bot, logins, opts = {}) {
      const role = join(dir, `role-${bot}.yaml`);
      writeFileSync(
        role,
        `kind: role\nversion: v7\nmetadata: { name: ${bot}-role }\nspec:\n` +
          `  options: { ${opts.roleTtl ? `max_session_ttl: ${opts.roleTtl}` : ''} }\n  allow:\n` +
          `    logins: ${JSON.stringify(logins)}\n`,
      );
      await tctlOk(['create', '-f', role]);
      const out = JSON.parse(await tctlOk(['bots', 'add', bot, '--roles', `${bot}-role`, '--format', 'json'])) as {
        token: string;
      };
      return out.token;
    },
    audit() {
      // the main log and the refusals log (refused joins and challenges), merged by time
      const read = (name: string) =>
        existsSync(join(dataDir, 'audit', name)) ? readFileSync(join(dataDir, 'audit', name), 'utf8') : '';
      const events = `${read('events.log')}${read('refusals.log')}`
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, any>);
      return events.sort((x, y) => (String(x.time) < String(y.time) ? -1 : String(x.time) > String(y.time) ? 1 : 0));
    },
    stop: auth.stop,
  };
}

/** The flags that point tbot at a cluster and join it with `method`. */
export function joinFlags(c: TestCluster, method: string, token: string): string[] {
  return ['--auth-server', c.addr, '--ca-pin', c.caPin, '--join-method', method, '--token', token];
}

/** Common tbot flags for a cluster. */
export function tbotFlags(c: TestCluster, token: string, storage: string, out?: string): string[] {
  return [
    '--auth-server',
    c.addr,
    '--token',
    token,
    '--ca-pin',
    c.caPin,
    '--data-dir',
    storage,
    ...(out ? ['--destination-dir', out] : []),
  ];
}

/** Writes `text` to `name` in the cluster's temp dir; returns its path (for tctl create FILE). */
export function clusterFile(c: Pick<TestCluster, 'dir'>, name: string, text: string): string {
  const path = join(c.dir, name);
  writeFileSync(path, text);
  return path;
}

/** A role document allowing one SSH login. */
export const roleYaml = (name: string, login: string): string =>
  `kind: role\nversion: v7\nmetadata: { name: ${name} }\nspec:\n  allow: { logins: [${login}] }\n`;

/**
 * `tctl tokens add --type=bot --bot-name BOT --join-method METHOD [ARGS] --format json`, which must
 * succeed; returns what it printed.
 */
export async function addJoinToken<T = { token: string; join_method: string }>(
  c: Pick<TestCluster, 'tctlOk'>,
  bot: string,
  method: string,
  args: string[] = [],
): Promise<T> {
  const add = ['tokens', 'add', '--type=bot', '--bot-name', bot, '--join-method', method, ...args];
  return JSON.parse(await c.tctlOk([...add, '--format', 'json'])) as T;
}

/** The mwi.yaml section that fetches `issuer`'s keys from a test issuer at `url`. */
export const oidcOverride = (issuer: string, url: string): string =>
  `oidc:\n  endpoint_overrides:\n    "${issuer}": "${url}"\n`;

/**
 * `tbot start` as a daemon that renews quickly: joins `c` with `method`, keeps its state where
 * `storage` says (`--storage DIR` or `--data-dir DIR`: a daemon's default is /var/lib/tbot), writes
 * to `out`, a 20 s certificate renewed every `renewal`.
 */
export function daemonArgs(
  c: TestCluster,
  method: string,
  token: string,
  o: { storage: [flag: '--storage' | '--data-dir', dir: string]; out: string; renewal: string },
): string[] {
  const ttl = ['--certificate-ttl', '20s', '--renewal-interval', o.renewal];
  return ['start', ...joinFlags(c, method, token), ...o.storage, '--destination-dir', o.out, ...ttl];
}

/** A bot `name` with a role of the same name allowing `login`, joining with the existing token `token`. */
export async function addDeployerBot(
  c: Pick<TestCluster, 'tctlOk' | 'dir'>,
  name: string,
  login: string,
  token: string,
): Promise<void> {
  await c.tctlOk(['create', '-f', clusterFile(c, `${name}-role.yaml`, roleYaml(name, login))]);
  await c.tctlOk(['bots', 'add', name, '--roles', name, '--token', token]);
}
