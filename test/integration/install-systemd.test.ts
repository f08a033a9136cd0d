import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cli, exited, run, spawnCli, tempDir, waitFor } from '../helpers/procs.js';

const PIN = `sha256:${'ab'.repeat(32)}`;

/** systemd-analyze is there (systemd 252 on the test machines); without it the checks are skipped. */
const analyze = async (args: string[]) => run('systemd-analyze', args, { timeoutMs: 60_000 });

describe('tbot install systemd and mwi install systemd (issue #13)', () => {
  let t: { path: string; cleanup: () => void };
  let units: string;
  let tbotYaml: string;
  let mwiYaml: string;
  before(() => {
    t = tempDir('install-systemd-');
    units = join(t.path, 'units');
    // a directory with a blank: the paths are quoted in the unit
    const conf = join(t.path, 'my conf');
    for (const d of [units, conf, join(t.path, 'store'), join(t.path, 'out a'), join(t.path, 'out-b')])
      mkdirSync(d, { recursive: true });
    tbotYaml = join(conf, 'tbot.yaml');
    writeFileSync(
      tbotYaml,
      [
        'version: v2',
        'auth_server: 127.0.0.1:3025',
        `onboarding: {join_method: token, token: abc, ca_pins: ["${PIN}"]}`,
        `storage: {type: directory, path: "${join(t.path, 'store')}"}`,
        'outputs:',
        `  - {type: identity, destination: {type: directory, path: "${join(t.path, 'out a')}"}}`,
        `  - {type: identity, destination: {type: directory, path: "${join(t.path, 'out-b')}"}}`,
        '',
      ].join('\n'),
    );
    mwiYaml = join(conf, 'mwi.yaml');
    writeFileSync(mwiYaml, `data_dir: ${join(t.path, 'mwi-data')}\nlisten: 127.0.0.1:3025\n`);
    mkdirSync(join(t.path, 'mwi-data'));
  });
  after(() => t?.cleanup());

  const root = ['--user', 'root', '--group', 'root'];

  it('without --write prints the unit: ExecStart runs this tbot start -c FILE; ReadWritePaths from tbot.yaml', async () => {
    const r = await cli('tbot', ['install', 'systemd', '-c', tbotYaml]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^User=tbot$/m);
    const exec = /^ExecStart=(.*)$/m.exec(r.stdout)![1]!;
    assert.ok(exec.startsWith(`${process.execPath} `), exec);
    assert.match(exec, /tbot\.js start -c ".*\/my conf\/tbot\.yaml"$/);
    const rw = /^ReadWritePaths=(.*)$/m.exec(r.stdout)![1]!;
    assert.equal(rw, `${join(t.path, 'store')} "${join(t.path, 'out a')}" ${join(t.path, 'out-b')}`);
  });

  it('tbot: --write writes NAME.service (0644), systemd-analyze verify accepts it; same content: unchanged', async () => {
    const args = ['install', 'systemd', '-c', tbotYaml, '--write', '--systemd-directory', units, ...root];
    const r = await cli('tbot', [...args, '--pid-file', join(t.path, 'run', 'tbot.pid')]);
    assert.equal(r.code, 0, r.stderr);
    const path = join(units, 'tbot.service');
    assert.equal(statSync(path).mode & 0o777, 0o644);
    assert.match(readFileSync(path, 'utf8'), /--pid-file .*\/run\/tbot\.pid$/m);
    assert.match(readFileSync(path, 'utf8'), /^ReadWritePaths=.* .*\/run$/m);
    const v = await analyze(['verify', path]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const again = await cli('tbot', [...args, '--pid-file', join(t.path, 'run', 'tbot.pid')]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /unchanged/);
    // other content (no --pid-file) is refused without --force, and nothing is written
    const before = readFileSync(path, 'utf8');
    const refused = await cli('tbot', args);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /exists with other content; --force replaces it/);
    assert.equal(readFileSync(path, 'utf8'), before);
    const forced = await cli('tbot', [...args, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.doesNotMatch(readFileSync(path, 'utf8'), /--pid-file/);
    const s = await analyze(['security', '--offline=true', path]);
    const score = /Overall exposure level for [^:]*: (.*)/.exec(s.stdout + s.stderr)?.[1];
    console.log(`systemd-analyze security --offline=true tbot.service: ${score ?? s.stdout + s.stderr}`);
    assert.ok(score, s.stdout + s.stderr);
  });

  it('tbot install systemd needs -c FILE (exit 2)', async () => {
    const r = await cli('tbot', ['install', 'systemd'], { env: { TBOT_CONFIG_PATH: '' } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /needs -c FILE/);
  });

  it('mwi: --write --name writes NAME.service with its data_dir writable; systemd-analyze verify accepts it', async () => {
    const r = await cli('mwi', [
      'install',
      'systemd',
      '-c',
      mwiYaml,
      '--write',
      '--systemd-directory',
      units,
      '--name',
      'mwi-auth',
      ...root,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const path = join(units, 'mwi-auth.service');
    const unit = readFileSync(path, 'utf8');
    assert.match(unit, /mwi\.js start -c ".*\/my conf\/mwi\.yaml"$/m);
    assert.equal(/^ReadWritePaths=(.*)$/m.exec(unit)![1], join(t.path, 'mwi-data'));
    const v = await analyze(['verify', path]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const s = await analyze(['security', '--offline=true', path]);
    const score = /Overall exposure level for [^:]*: (.*)/.exec(s.stdout + s.stderr)?.[1];
    console.log(`systemd-analyze security --offline=true mwi-auth.service: ${score ?? s.stdout + s.stderr}`);
    const printed = await cli('mwi', ['install', 'systemd', '-c', mwiYaml]);
    assert.match(printed.stdout, /^User=mwi$/m);
    assert.match(printed.stdout, /^Group=mwi$/m);
    assert.doesNotMatch(printed.stderr, /below 1024/);
    // a privileged port cannot work under a unit that grants no capability: said before it fails at start
    const low = join(t.path, 'low-port.yaml');
    writeFileSync(low, `cluster_name: example.com\ndata_dir: ${join(t.path, 'mwi-data')}\nlisten: 0.0.0.0:443\n`);
    const warned = await cli('mwi', ['install', 'systemd', '-c', low]);
    assert.equal(warned.code, 0, warned.stderr);
    assert.match(warned.stderr, /warning: listen 0\.0\.0\.0:443: the unit grants no capability.*EACCES/);
  });

  it('mwi start without https_keypairs: SIGHUP (systemctl reload) is logged and the service keeps running', async () => {
    const dir = join(t.path, 'hup-data');
    const p = spawnCli('mwi', ['start', '--data-dir', dir, '--listen', '127.0.0.1:0', '--storage', 'memory://']);
    try {
      await waitFor('mwi listening', () => p.out().includes('CA pin:'));
      p.kill('SIGHUP');
      await waitFor('the SIGHUP log line', () => p.out().includes('no https_keypairs to reload'));
      assert.equal(p.exitCode, null, p.out());
      p.kill('SIGTERM');
      assert.equal(await exited(p), 0, p.out());
    } finally {
      p.kill('SIGKILL');
    }
  });
});
