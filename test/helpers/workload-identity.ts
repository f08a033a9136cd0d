import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiClient } from '../../src/api/client.js';
import type { BotState } from '../../src/agent/state.js';
import { clusterFile, tbotFlags, type TestCluster } from './cluster.js';
import { cli, waitFor } from './procs.js';
import { freePort } from './sshd.js';

/** A role granting workload identities labelled `team: <team>` and a bot with it; the bot's join token. */
export async function workloadRoleBot(c: TestCluster, bot: string, team: string): Promise<string> {
  const role = clusterFile(
    c,
    `wi-role-${bot}.yaml`,
    `kind: role\nversion: v7\nmetadata: { name: ${bot}-wi }\nspec:\n  allow:\n` +
      `    workload_identity_labels: { team: [${team}] }\n`,
  );
  await c.tctlOk(['create', '-f', role]);
  const out = JSON.parse(await c.tctlOk(['bots', 'add', bot, '--roles', `${bot}-wi`, '--format', 'json'])) as {
    token: string;
  };
  return out.token;
}

/** A bot whose role grants workload identities labelled `team: <team>`, joined once with tbot; its identity. */
export async function workloadBotIdentity(
  c: TestCluster,
  bot: string,
  team: string,
): Promise<{ ca: string[]; cert: string; key: string }> {
  const token = await workloadRoleBot(c, bot, team);
  const storage = join(c.dir, `storage-${bot}`);
  const joined = await cli('tbot', ['start', ...tbotFlags(c, token, storage, join(c.dir, `out-${bot}`)), '--oneshot']);
  assert.equal(joined.code, 0, joined.stderr);
  const id = (JSON.parse(readFileSync(join(storage, 'state.json'), 'utf8')) as BotState).identity!;
  return { ca: id.tls_ca_certs, cert: id.tls_cert, key: id.key };
}

/** The same, as an API client speaking with the bot's identity. */
export async function workloadBot(c: TestCluster, bot: string, team: string): Promise<ApiClient> {
  return new ApiClient({ addrs: [c.addr], tls: await workloadBotIdentity(c, bot, team) });
}

/** Creates a workload_identity from YAML text. */
export async function createIdentity(c: TestCluster, name: string, yaml: string): Promise<void> {
  await c.tctlOk(['create', '-f', clusterFile(c, `wi-${name}.yaml`, yaml)]);
}

/** An SVID's files: the leaf, its key and the trust bundle to verify the peer with. */
export interface SvidFiles {
  cert: string;
  key: string;
  bundle: string;
}

/**
 * `openssl s_server` on a free local port presenting `svid`, requiring a client certificate that
 * `svid.bundle` verifies (`extra`: more arguments); resolves once it accepts. `out()`: what it printed.
 */
export async function svidServer(
  svid: SvidFiles,
  extra: string[],
  timeoutMs?: number,
): Promise<{ port: number; out: () => string; kill: () => void }> {
  const port = await freePort();
  const server = spawn('openssl', [
    's_server',
    '-accept',
    `127.0.0.1:${port}`,
    '-cert',
    svid.cert,
    '-key',
    svid.key,
    '-CAfile',
    svid.bundle,
    '-Verify',
    '1',
    '-verify_return_error',
    ...extra,
  ]);
  let out = '';
  server.stdout.on('data', (d: Buffer) => (out += d.toString()));
  server.stderr.on('data', (d: Buffer) => (out += d.toString()));
  try {
    await waitFor('s_server', () => out.includes('ACCEPT'), timeoutMs);
  } catch (err) {
    server.kill();
    throw err;
  }
  return { port, out: () => out, kill: () => server.kill() };
}
