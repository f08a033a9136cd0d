// Teleport's start lines and onboarding flags (issue #11): with an operator certificate for a
// public name (here from a test-made "public" CA, trusted by tbot only through
// NODE_EXTRA_CA_CERTS), tctl prints a --proxy-server line and keeps the pinned one; tbot joins
// with --join-uri (token and bound_keypair), --registration-secret-path and --static-key-path.
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { cli, tempDir } from '../helpers/procs.js';
import { makePublicPki } from '../helpers/public-pki.js';

describe('start lines through a public certificate, and tbot --join-uri / bound_keypair file flags', () => {
  const dir = tempDir('join-uri');
  let c: TestCluster;
  let port: string;
  /** tbot's environment with the test's public CA in its trust store. */
  let trusted: NodeJS.ProcessEnv;
  const path = (name: string) => join(dir.path, name);
  const file = (name: string, text: string) => {
    writeFileSync(path(name), text, { mode: 0o600 });
    return path(name);
  };
  /** A bound_keypair token for bot "uri": its name and generated registration secret. */
  const bkToken = async () => {
    const out = JSON.parse(
      await c.tctlOk(['tokens', 'add', '--type=bot', '--bot-name=uri', '--join-method=bound_keypair', '--format=json']),
    ) as { token: string; registration_secret: string };
    assert.match(out.registration_secret, /^[0-9a-f]{32}$/);
    return out;
  };
  before(async () => {
    const pki = await makePublicPki(dir.path);
    const leaf = await pki.issue('public', 'DNS:localhost,IP:127.0.0.1');
    trusted = { NODE_EXTRA_CA_CERTS: pki.root };
    c = await startCluster('join-uri.example', undefined, ['--tls-cert', leaf.cert, '--tls-key', leaf.key]);
    port = c.addr.split(':')[1]!;
    await c.addBot('uri', [userInfo().username]);
  });
  after(async () => {
    await c?.stop();
    dir.cleanup();
  });

  it('status names the public addresses; bots add prints the --proxy-server line, then the pinned one; both join', async () => {
    const status = JSON.parse(await c.tctlOk(['status', '--format', 'json']));
    assert.deepEqual(status.public_addrs, [`localhost:${port}`, `127.0.0.1:${port}`]);
    const out = await c.tctlOk(['bots', 'add', 'lines', '--roles', 'uri-role']);
    const token = /The bot token: ([0-9a-f]{32})/.exec(out)![1]!;
    const proxyLine = `> tbot start \\\n   --proxy-server=localhost:${port} \\\n   --join-method=token \\\n`;
    const pinnedLine = `> tbot start \\\n   --auth-server=${c.addr} \\\n   --join-method=token \\\n`;
    assert.ok(out.includes(`> (umask 077; echo ${token} > tbot-token)\n${proxyLine}`), out);
    assert.match(
      out,
      /--token="\$PWD\/tbot-token" \\\n {3}--data-dir=\.\/tbot-data \\\n {3}--destination-dir=\.\/tbot-user\n\n/,
    );
    assert.match(out, /tbot verifies localhost:\d+ with the system trust store [\s\S]*\. Or, with the CA pin/);
    assert.ok(out.indexOf(proxyLine) < out.indexOf(pinnedLine), 'the public line first');
    assert.match(out.slice(out.indexOf(pinnedLine)), new RegExp(`--ca-pin=${c.caPin}`));
    assert.doesNotMatch(out.slice(0, out.indexOf(pinnedLine)), /--ca-pin=/, 'no pin on the public line');
    // the printed public line, run as printed (the token from its file): it joins without a pin
    const tokenFile = file('lines-token', `${token}\n`);
    const r = await cli(
      'tbot',
      ['start', `--proxy-server=localhost:${port}`, '--join-method=token', `--token=${tokenFile}`].concat([
        `--data-dir=${path('lines-data')}`,
        `--destination-dir=${path('lines-out')}`,
        '--oneshot',
      ]),
      { env: trusted },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(join(path('lines-out'), 'tlscert')));
    // bots instances add: the same two lines for a new token; with --token, for the existing one
    const inst = await c.tctlOk(['bots', 'instances', 'add', 'lines']);
    assert.ok(inst.includes(proxyLine) && inst.includes(pinnedLine), inst);
    await c.tctlOk([
      'create',
      file(
        'gh.yaml',
        'kind: token\nversion: v2\nmetadata: { name: gh-lines }\nspec:\n  join_method: github\n  bot_name: lines\n' +
          '  github:\n    allow: [{ repository: octo/app }]\n',
      ),
    ]);
    const bound = await c.tctlOk(['bots', 'instances', 'add', 'lines', '--token', 'gh-lines']);
    assert.ok(
      bound.includes(
        `> tbot start identity \\\n   --proxy-server=localhost:${port} \\\n   --join-method=github \\\n` +
          '   --token=gh-lines \\\n   --storage=./tbot-data \\\n   --destination=./tbot-user\n',
      ),
      bound,
    );
    assert.ok(bound.includes(`   --auth-server=${c.addr} \\\n   --join-method=github \\\n   --token=gh-lines \\\n`));
  });

  it('--join-uri tbot+proxy+token:// joins through the public name without a pin; the token is never logged', async () => {
    const secret = JSON.parse(await c.tctlOk(['tokens', 'add', '--type=bot', '--bot-name=uri', '--format=json'])).token;
    const r = await cli(
      'tbot',
      ['start', '--join-uri', `tbot+proxy+token://${secret}@localhost:${port}`, '--oneshot', '-d'].concat([
        '--destination-dir',
        path('uri-out'),
      ]),
      { env: trusted },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(join(path('uri-out'), 'tlscert')));
    assert.match(r.stderr, /verifying proxy_server with the system trust store/);
    assert.doesNotMatch(r.stderr, new RegExp(secret));
    // tbot.yaml join_uri, and a conflicting --token named with it
    const secret2 = JSON.parse(
      await c.tctlOk(['tokens', 'add', '--type=bot', '--bot-name=uri', '--format=json']),
    ).token;
    const yaml = file(
      'uri.yaml',
      `version: v2\njoin_uri: "tbot+proxy+token://${secret2}@localhost:${port}"\noneshot: true\n`,
    );
    const both = await cli('tbot', ['start', '-c', yaml, '--token', 'x'.repeat(20)], { env: trusted });
    assert.equal(both.code, 2);
    assert.match(
      both.stderr,
      /join_uri: the join URI \(--join-uri or tbot\.yaml join_uri\) conflicts with onboarding\.token/,
    );
    assert.doesNotMatch(both.stderr, new RegExp(secret2));
    const fromFile = await cli('tbot', ['start', '-c', yaml], { env: trusted });
    assert.equal(fromFile.code, 0, fromFile.stderr);
    const bad = await cli('tbot', ['start', '--join-uri', `tbot+proxy+token://${secret2}@localhost:70000`]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /join_uri: port 70000 is out of range \(1 to 65535\)/);
    assert.doesNotMatch(bad.stderr, new RegExp(secret2));
  });

  it('--join-uri tbot+auth+bound-keypair://TOKEN:SECRET@...: the parameter is the registration secret', async () => {
    const bk = await bkToken();
    const uri = `tbot+auth+bound-keypair://${bk.token}:${bk.registration_secret}@${c.addr}`;
    const r = await cli(
      'tbot',
      ['start', '--join-uri', uri, '--ca-pin', c.caPin, '--data-dir', path('bk-data'), '--oneshot', '-d'],
      // the URI's secret is configuration: it beats the variable, with a warning
      { env: { TBOT_REGISTRATION_SECRET: 'not-the-secret-0123456789' } },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /bound keypair join .*recoveries_used=1/);
    assert.match(
      r.stderr,
      /registration_secret and \$TBOT_REGISTRATION_SECRET are both set: the configured one is used/,
    );
    assert.doesNotMatch(r.stderr, new RegExp(bk.registration_secret));
    // without the pin an auth address is refused before anything is sent, as any auth_server
    const bk2 = await bkToken();
    const unpinned = await cli('tbot', [
      'start',
      '--join-uri',
      `tbot+auth+boundkeypair://${bk2.token}:${bk2.registration_secret}@${c.addr}`,
      '--oneshot',
    ]);
    assert.equal(unpinned.code, 2);
    assert.match(unpinned.stderr, /onboarding\.ca_pins: required for the first join/);
  });

  it('--registration-secret-path FILE joins; with --registration-secret too it is refused', async () => {
    const bk = await bkToken();
    const secretFile = file('reg-secret', `${bk.registration_secret}\n`);
    const flags = ['start', '--auth-server', c.addr, '--ca-pin', c.caPin, '--join-method', 'bound_keypair'].concat([
      '--token',
      bk.token,
      '--registration-secret-path',
      secretFile,
      '--oneshot',
    ]);
    const both = await cli('tbot', [...flags, '--registration-secret', bk.registration_secret]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /registration_secret_path: give registration_secret_path .* not both, as in Teleport/);
    const r = await cli('tbot', [...flags, '--data-dir', path('path-data')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /bound keypair join .*recoveries_used=1/);
    assert.doesNotMatch(r.stderr, new RegExp(bk.registration_secret));
    // the documented form (docs/join-methods/bound-keypair.md): a join URI without the secret, the secret by file
    const bk2 = await bkToken();
    const byUri = await cli('tbot', [
      'start',
      '--join-uri',
      `tbot+auth+bound-keypair://${bk2.token}@${c.addr}`,
      '--registration-secret-path',
      file('reg-secret-2', `${bk2.registration_secret}\n`),
      '--ca-pin',
      c.caPin,
      '--oneshot',
      '--data-dir',
      path('uri-path-data'),
    ]);
    assert.equal(byUri.code, 0, byUri.stderr);
    assert.match(byUri.stderr, /bound keypair join .*recoveries_used=1/);
  });

  it('--static-key-path FILE: a pre-registered static key joins; nothing of it is written', async () => {
    const keyFile = path('static.pem');
    const kp = await cli('tbot', ['keypair', 'create', '--static-key-path', keyFile]);
    assert.equal(kp.code, 0, kp.stderr);
    const pub = kp.stdout.trim().split('\n').at(-1)!;
    await c.tctlOk([
      'create',
      file(
        'static.yaml',
        'kind: token\nversion: v2\nmetadata: { name: static-uri }\nspec:\n  join_method: bound_keypair\n' +
          `  bot_name: uri\n  bound_keypair:\n    onboarding:\n      initial_public_key: "${pub}"\n` +
          '    recovery:\n      mode: insecure\n',
      ),
    ]);
    const r = await cli('tbot', [
      'start',
      '--join-uri',
      `tbot+auth+bound-keypair://static-uri@${c.addr}`,
      '--ca-pin',
      c.caPin,
      '--static-key-path',
      keyFile,
      '--destination-dir',
      path('static-out'),
      '--oneshot',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(join(path('static-out'), 'tlscert')));
  });
});
