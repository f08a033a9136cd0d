import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { clusterFile, startCluster, type TestCluster } from '../helpers/cluster.js';
import { REPO_ROOT, run, tempDir, waitFor, type CliProcess } from '../helpers/procs.js';
import {
  addWorkloadBot,
  lines,
  PYTHON,
  pythonClient,
  ROOT_ONLY,
  startTbot,
  stopTbot,
  tbotYaml,
  workload,
} from '../helpers/workload-api.js';
import { spawn } from 'node:child_process';

const NOBODY = { uid: 65534, gid: 65534 };

/**
 * Attestation against a workload that changes under tbot: it execs an allowed binary after
 * connecting (a relay child keeps the connection), exits (its pid free for reuse), or shows an
 * allowed path through its own mount namespace.
 */
describe('workload api: attestation holds the process that connected', ROOT_ONLY, () => {
  let c: TestCluster;
  let tmp: { path: string; cleanup: () => void };
  let client: string;
  let socket: string;
  let tbot: CliProcess | undefined;
  let n = 0;
  const identity = (name: string, path: string) =>
    `kind: workload_identity\nversion: v1\nmetadata: { name: ${name}, labels: { team: at } }\nspec:\n` +
    `  spiffe:\n    id: /${name}\n  rules:\n    allow:\n      - conditions:\n` +
    `          - attribute: workload.unix.binary_path\n            eq: { value: "${path}" }\n`;
  before(async () => {
    tmp = tempDir('wlapi-attest');
    chmodSync(tmp.path, 0o755);
    client = await pythonClient(join(tmp.path, 'py'));
    for (const f of ['relay', 'flood']) {
      copyFileSync(join(REPO_ROOT, 'test', 'fixtures', `workload_api_${f}.py`), join(client, `${f}.py`));
      chmodSync(join(client, `${f}.py`), 0o644);
    }
    c = await startCluster('wlapi-attest.example');
    await c.tctlOk(['create', '-f', clusterFile(c, 'sleep.yaml', identity('sleep', '/usr/bin/sleep'))]);
    await c.tctlOk(['create', '-f', clusterFile(c, 'py.yaml', identity('py', realpathSync(PYTHON)))]);
    const token = await addWorkloadBot(c, 'atbot', 'at');
    const dir = join(tmp.path, 'tbot');
    mkdirSync(dir);
    socket = join(tmp.path, 'w.sock');
    const file = tbotYaml(
      c,
      token,
      dir,
      `  - type: workload-identity-api\n    listen: unix://${socket}\n    selector: { labels: { team: [at] } }\n`,
    );
    tbot = await startTbot(file);
    const proxies = join(tmp.path, 'proxies');
    mkdirSync(proxies, { mode: 0o777 });
    chmodSync(proxies, 0o777);
  });
  after(async () => {
    await stopTbot(tbot);
    await c?.stop();
    tmp?.cleanup();
  });

  /** Runs the relay as nobody (`mode`: exec or exit), then a client through it. */
  const relayed = async (mode: 'exec' | 'exit') => {
    const proxy = join(tmp.path, 'proxies', `p${++n}.sock`);
    const py = [PYTHON, join(client, 'relay.py'), socket, proxy, mode];
    const relay = spawn('setpriv', [`--reuid=${NOBODY.uid}`, `--regid=${NOBODY.gid}`, '--clear-groups', ...py], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    relay.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor('the relay to be ready', () => out.includes('ready'), 10_000);
    await new Promise((r) => setTimeout(r, 300));
    const r = await workload(client, proxy, ['jwt', 'aud'], NOBODY);
    relay.kill('SIGKILL');
    return r;
  };

  it('a control: python itself gets the identity of its own binary path', async () => {
    const r = await workload(client, socket, ['jwt', 'aud'], NOBODY);
    assert.equal(r.code, 0, r.stdout + r.stderr + tbot!.out());
    assert.deepEqual(lines(r)[0]!.spiffe_ids, ['spiffe://wlapi-attest.example/py']);
  });

  it('a process that connects then execs an allowed binary: the relayed call is refused, no SVID', async () => {
    const r = await relayed('exec');
    const out = lines(r)[0]!;
    assert.equal(out.error, 'PERMISSION_DENIED', r.stdout + r.stderr);
    assert.match(out.details, /runs another executable than the one attested/);
  });

  it('a process that connects then exits: the relayed call is refused (its pid may be reused)', async () => {
    const r = await relayed('exit');
    const out = lines(r)[0]!;
    assert.equal(out.error, 'PERMISSION_DENIED', r.stdout + r.stderr);
    assert.match(out.details, /the process \d+ exited/);
  });

  it('a process in its own mount namespace with python bound over /usr/bin/sleep gets no binary_path', async () => {
    const py = [join(client, 'workload_api_client.py'), socket, 'jwt', 'aud'].map((a) => `'${a}'`).join(' ');
    const r = await run(
      'unshare',
      ['-m', 'sh', '-c', `mount --bind '${realpathSync(PYTHON)}' /usr/bin/sleep && exec /usr/bin/sleep ${py}`],
      { env: { PYTHONPATH: client, PYTHONDONTWRITEBYTECODE: '1' } },
    );
    const out = lines(r)[0]!;
    assert.equal(out.error, 'PERMISSION_DENIED', r.stdout + r.stderr);
  });

  it("a flood of silent connections from one uid: capped at 128, closed after 10 s, another uid's workload served", async () => {
    const py = [PYTHON, join(client, 'flood.py'), socket, '300', '11'];
    const flood = spawn('setpriv', [`--reuid=${NOBODY.uid}`, `--regid=${NOBODY.gid}`, '--clear-groups', ...py], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    flood.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const reports = () =>
      out
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { connected?: number; open: number });
    try {
      await waitFor('the flood', () => reports().length >= 1, 20_000);
      assert.ok(reports()[0]!.connected! > 128, out);
      assert.ok(reports()[0]!.open <= 128, `at most 128 connections of one uid stay open: ${out}`);
      const r = await workload(client, socket, ['jwt', 'aud']);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      await waitFor('the second report', () => reports().length >= 2, 20_000);
      assert.equal(reports()[1]!.open, 0, `silent connections are closed: ${out}`);
    } finally {
      flood.kill('SIGKILL');
    }
  });
});
