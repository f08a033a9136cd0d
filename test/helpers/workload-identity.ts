import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiClient } from '../../src/api/client.js';
import type { BotState } from '../../src/agent/state.js';
import { clusterFile, tbotFlags, type TestCluster } from './cluster.js';
import { cli } from './procs.js';

/** A bot whose role grants workload identities labelled `team: <team>`, joined once with tbot; its API client. */
export async function workloadBot(c: TestCluster, bot: string, team: string): Promise<ApiClient> {
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
  const storage = join(c.dir, `storage-${bot}`);
  const joined = await cli('tbot', [
    'start',
    ...tbotFlags(c, out.token, storage, join(c.dir, `out-${bot}`)),
    '--oneshot',
  ]);
  assert.equal(joined.code, 0, joined.stderr);
  const id = (JSON.parse(readFileSync(join(storage, 'state.json'), 'utf8')) as BotState).identity!;
  return new ApiClient({ addrs: [c.addr], tls: { ca: id.tls_ca_certs, cert: id.tls_cert, key: id.key } });
}

/** Creates a workload_identity from YAML text. */
export async function createIdentity(c: TestCluster, name: string, yaml: string): Promise<void> {
  await c.tctlOk(['create', '-f', clusterFile(c, `wi-${name}.yaml`, yaml)]);
}
