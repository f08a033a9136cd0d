import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { cli, exited, spawnCli, waitFor } from '../helpers/procs.js';

/** Teleport's tbot command habits (issue #11): modes, URIs, environment, logging, pid file. */
describe('tbot as Teleport users call it', () => {
  let c: TestCluster;
  let n = 0;
  before(async () => {
    c = await startCluster('tbot-cli.example');
  });
  after(async () => c?.stop());

  /** A fresh bot and its single-use token. */
  const newBot = async () => c.addBot(`tb-${++n}`, ['deploy']);
  const dir = (name: string) => join(c.dir, `${name}-${n}`);
  const join0 = (token: string) => [
    '--auth-server',
    c.addr,
    '--ca-pin',
    c.caPin,
    '--join-method',
    'token',
    '--token',
    token,
  ];

  it('start identity --destination file:///… --storage file:///… joins and writes the identity there', async () => {
    const token = await newBot();
    const r = await cli('tbot', [
      'start',
      'identity',
      ...join0(token),
      '--destination',
      `file://${dir('out')}`,
      '--storage',
      `file://${dir('store')}`,
      '--oneshot',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(join(dir('out'), 'tlscert')));
    assert.ok(existsSync(join(dir('store'), 'state.json')), 'storage is the directory the URI names');
    assert.ok(!existsSync(join(process.cwd(), 'file:')), 'no directory named "file:"');
  });

  it('the mode aliases id and ssh, a bare path and memory:// build the same config; other modes say why', async () => {
    const flags = ['--auth-server', 'a:1', '--token', 't', '--ca-pin', c.caPin];
    const id = await cli('tbot', ['configure', 'id', ...flags, '--destination', '/opt/out', '--storage', 'memory://']);
    assert.equal(id.code, 0, id.stderr);
    const cfg = parse(id.stdout);
    assert.deepEqual(cfg.outputs, [{ type: 'identity', destination: { type: 'directory', path: '/opt/out' } }]);
    assert.deepEqual(cfg.storage, { type: 'memory' });
    const ssh = await cli('tbot', ['configure', 'ssh', ...flags, '--destination', 'file:///opt/out']);
    assert.deepEqual(parse(ssh.stdout).outputs, cfg.outputs);
    for (const mode of ['database', 'kubernetes', 'app']) {
      const r = await cli('tbot', ['start', mode, ...flags, '--destination', '/x']);
      assert.equal(r.code, 2);
      assert.match(r.stderr, new RegExp(`mwi has no ${mode} mode \\(Teleport's tbot start ${mode}\\)`));
    }
    const noDest = await cli('tbot', ['start', 'identity', ...flags]);
    assert.equal(noDest.code, 2);
    assert.match(noDest.stderr, /--destination: is required for tbot start identity/);
    const legacyDest = await cli('tbot', ['start', ...flags, '--destination', '/x']);
    assert.equal(legacyDest.code, 2);
    assert.match(legacyDest.stderr, /--destination: .*the legacy form takes --destination-dir/);
    for (const [uri, msg] of [
      ['kubernetes-secret://ns', /--destination: expected kubernetes-secret:\/\/NAMESPACE\/NAME/],
      ['s3://bucket/x', /unknown scheme "s3:\/\/"/],
      ['file://host/x', /a file URI names a path on this host/],
    ] as const) {
      const r = await cli('tbot', ['configure', 'identity', ...flags, '--destination', uri]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, msg);
    }
  });

  it('configure -o FILE writes the file atomically, 0600; a bad configuration writes nothing', async () => {
    const file = join(c.dir, 'written.yaml');
    const flags = ['--auth-server', c.addr, '--token', 't', '--ca-pin', c.caPin, '--data-dir', '/var/lib/x'];
    const r = await cli('tbot', ['configure', ...flags, '-o', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(readFileSync(file, 'utf8'), (await cli('tbot', ['configure', ...flags])).stdout);
    const bad = join(c.dir, 'bad.yaml');
    const refused = await cli('tbot', ['configure', ...flags, '--certificate-ttl', 'soon', '--output', bad]);
    assert.equal(refused.code, 2);
    assert.ok(!existsSync(bad));
    assert.deepEqual(
      readdirSync(c.dir).filter((f) => f.includes('.tmp')),
      [],
      'no temporary file left',
    );
    assert.equal((await cli('tbot', ['start', ...flags, '-o', bad])).code, 2);
  });

  it('keypair create: --storage URIs, --format json, --overwrite, --static-key-path, --proxy-server', async () => {
    n++;
    const store = dir('kp');
    const first = await cli('tbot', ['keypair', 'create', '--storage', `file://${store}`, '--format', 'json']);
    assert.equal(first.code, 0, first.stderr);
    const pub = JSON.parse(first.stdout).public_key as string;
    assert.match(pub, /^ssh-ed25519 /);
    assert.ok(existsSync(join(store, 'state.json')));
    // without --overwrite the existing key is printed; with it, a new one replaces it
    const again = await cli('tbot', ['keypair', 'create', '--storage', store, '--proxy-server', 'proxy.example:443']);
    assert.equal(again.stdout.trim(), pub);
    const replaced = await cli('tbot', ['keypair', 'create', '--storage', store, '--overwrite']);
    assert.notEqual(replaced.stdout.trim(), pub);
    assert.match(replaced.stdout, /^ssh-ed25519 /);
    const mem = await cli('tbot', ['keypair', 'create', '--storage', 'memory://']);
    assert.equal(mem.code, 2);
    assert.match(mem.stderr, /memory:\/\/ keeps nothing/);
    // a static key written to a file of its own, 0600, read back without --overwrite
    const keyFile = join(c.dir, `static-${n}.pem`);
    const s1 = await cli('tbot', ['keypair', 'create', '--static-key-path', keyFile, '--format', 'json']);
    assert.equal(s1.code, 0, s1.stderr);
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    assert.match(readFileSync(keyFile, 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
    const doc = JSON.parse(s1.stdout);
    assert.equal(doc.private_key, undefined, 'the private key went to the file, not stdout');
    const s2 = await cli('tbot', ['keypair', 'create', '--static', '--static-key-path', keyFile]);
    assert.equal(s2.stdout.trim(), doc.public_key);
    const s3 = await cli('tbot', ['keypair', 'create', '--static-key-path', keyFile, '--overwrite']);
    assert.notEqual(s3.stdout.trim(), doc.public_key);
    // --static --format json: Teleport's document, the private key as base64 of the PEM file
    const s4 = JSON.parse((await cli('tbot', ['keypair', 'create', '--static', '--format', 'json'])).stdout);
    assert.match(Buffer.from(s4.private_key, 'base64').toString(), /^-----BEGIN PRIVATE KEY-----\n/);
    assert.equal((await cli('tbot', ['keypair', 'create', '--static', '--storage', store])).code, 2);
  });

  it('--log-format json writes one JSON object per line; -d, TBOT_DEBUG and debug: true print debug lines', async () => {
    const run = async (extra: string[], env: NodeJS.ProcessEnv = {}, yaml?: string) => {
      const token = await newBot();
      const cfg = join(c.dir, `dbg-${n}.yaml`);
      if (yaml) writeFileSync(cfg, yaml);
      const args = ['start', ...join0(token), '--destination-dir', dir('o'), '--oneshot', ...extra];
      const r = await cli('tbot', yaml ? [...args, '-c', cfg] : args, { env });
      assert.equal(r.code, 0, r.stderr);
      return r.stderr;
    };
    const json = await run(['--log-format', 'json']);
    const lines = json.trim().split('\n');
    assert.ok(lines.length >= 2);
    for (const l of lines) {
      const entry = JSON.parse(l);
      assert.ok(entry.timestamp && entry.level && entry.message, l);
      assert.equal(entry.component, 'tbot');
    }
    assert.ok(!lines.some((l) => JSON.parse(l).level === 'debug'), 'no debug lines without --debug');
    assert.doesNotMatch(await run([]), /DEBUG/);
    assert.match(await run(['-d']), /DEBUG \[tbot\] configuration mode=legacy .*join_method=token/);
    assert.match(await run([], { TBOT_DEBUG: 'true' }), /DEBUG \[tbot\] configuration/);
    assert.match(await run([], {}, 'version: v2\ndebug: true\n'), /DEBUG \[tbot\] configuration/);
    const debugJson = (await run(['--debug', '--log-format', 'json']))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.ok(debugJson.some((e) => e.level === 'debug' && e.message === 'configuration' && e.storage === 'memory'));
    const bad = await cli('tbot', ['start', '--log-format', 'xml']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--log-format: expected text or json/);
    const badEnv = await cli('tbot', ['configure'], { env: { TBOT_DEBUG: 'maybe' } });
    assert.equal(badEnv.code, 2);
    assert.match(badEnv.stderr, /TBOT_DEBUG: expected true or false/);
  });

  it('--pid-file is written at start and removed at exit', async () => {
    const token = await newBot();
    const pidFile = join(c.dir, 'tbot.pid');
    const tbot = spawnCli('tbot', ['start', ...join0(token), '--data-dir', dir('pid-store'), '--pid-file', pidFile]);
    try {
      await waitFor('the pid file', () => existsSync(pidFile) && /renewed|joined/i.test(tbot.out()));
      assert.equal(readFileSync(pidFile, 'utf8'), `${tbot.pid}\n`);
    } finally {
      tbot.kill('SIGTERM');
      await exited(tbot);
    }
    assert.equal(tbot.exitCode, 0, tbot.out());
    assert.ok(!existsSync(pidFile), 'removed at exit');
  });

  it('TBOT_CONFIG_PATH is -c and TELEPORT_AUTH_SERVER is --auth-server (a flag or the file wins)', async () => {
    const token = await newBot();
    const cfg = join(c.dir, `env-${n}.yaml`);
    writeFileSync(
      cfg,
      `version: v2\nonboarding:\n  join_method: token\n  token: ${token}\n  ca_pins: ["${c.caPin}"]\n` +
        `outputs:\n  - type: identity\n    destination: { type: directory, path: ${dir('env-out')} }\n`,
    );
    const r = await cli('tbot', ['start', '--oneshot'], {
      env: { TBOT_CONFIG_PATH: cfg, TELEPORT_AUTH_SERVER: c.addr },
    });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(join(dir('env-out'), 'tlscert')));
    const env = { TBOT_CONFIG_PATH: cfg, TELEPORT_AUTH_SERVER: 'from-env:1' };
    assert.equal(parse((await cli('tbot', ['configure'], { env })).stdout).auth_server, 'from-env:1');
    const flag = await cli('tbot', ['configure', '--auth-server', 'from-flag:1'], { env });
    assert.equal(parse(flag.stdout).auth_server, 'from-flag:1');
    writeFileSync(cfg, `${readFileSync(cfg, 'utf8')}auth_server: from-file:1\n`);
    assert.equal(parse((await cli('tbot', ['configure'], { env })).stdout).auth_server, 'from-file:1');
    const explicit = await cli('tbot', ['configure', '-c', join(c.dir, 'none.yaml')], { env });
    assert.equal(explicit.code, 2, '-c wins over TBOT_CONFIG_PATH');
    assert.match(explicit.stderr, /cannot read config file .*none\.yaml/);
  });

  it('--help texts name the new modes, commands and flags', async () => {
    const tbot = (await cli('tbot', ['--help'])).stdout;
    for (const s of [
      'identity, id, ssh',
      '--destination URI',
      '--storage URI',
      '--pid-file',
      '--log-format',
      '-o, --output',
    ])
      assert.ok(tbot.includes(s), `tbot --help: ${s}`);
    const kp = (await cli('tbot', ['keypair', 'create', '--help'])).stdout;
    for (const s of ['--static-key-path', '--overwrite', '--format', '--proxy-server']) assert.ok(kp.includes(s), s);
    const tctl = (await cli('tctl', ['--help'])).stdout;
    for (const s of ['create [FILE] [-f|--force]', 'edit KIND/NAME', 'lock (--user bot-NAME', 'auth export --type'])
      assert.ok(tctl.includes(s), `tctl --help: ${s}`);
  });

  it('--version on every program, as well as the version subcommands', async () => {
    for (const prog of ['mwi', 'tctl', 'tbot'] as const) {
      for (const args of [['--version'], ['version']]) {
        const r = await cli(prog, args);
        assert.equal(r.code, 0, `${prog} ${args[0]}: ${r.stderr}`);
        assert.match(r.stdout, new RegExp(`^${prog} v\\d+\\.\\d+\\.\\d+`));
      }
    }
  });
});
