// Teleport-shaped tbot.yaml files (test/compat/tbot, written from Teleport's field definitions) run
// unchanged with mwi's tbot (issue #11): `tbot configure -c FILE` accepts each, and `tbot start -c
// FILE` joins a real Auth Service and writes outputs whose certificates ssh-keygen and openssl read.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';
import { cli, exited, run, spawnCli, tempDir, waitFor } from '../helpers/procs.js';
import { makePublicPki } from '../helpers/public-pki.js';
import { freePort } from '../helpers/sshd.js';

// compiled to dist/test/integration: the files are at ../../../test/compat/tbot
const FILES = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/compat/tbot');
const CLUSTER = 'tbot-compat.example';
const GITLAB = 'https://gitlab.com';

/** The keys Teleport's tbot.yaml v2 has (the fact sheet, section 3), by where they appear. */
const TELEPORT_KEYS = {
  top: [
    'version',
    'debug',
    'auth_server',
    'proxy_server',
    'onboarding',
    'storage',
    'services',
    'outputs',
    'credential_ttl',
    'renewal_interval',
    'certificate_ttl',
    'oneshot',
    'fips',
    'diag_addr',
    'insecure',
  ],
  onboarding: ['join_method', 'token', 'ca_pins', 'ca_path', 'gitlab', 'bound_keypair'],
  destination: ['type', 'path', 'symlinks', 'acls', 'readers'],
  identity: [
    'type',
    'name',
    'destination',
    'cluster',
    'ssh_config',
    'allow_reissue',
    'credential_ttl',
    'renewal_interval',
  ],
};

/** The file with each placeholder replaced; every placeholder given must be in it. */
function fill(name: string, vars: Record<string, string>, dir: string): string {
  let text = readFileSync(join(FILES, name), 'utf8');
  for (const [k, v] of Object.entries(vars)) {
    const word = new RegExp(`\\b${k}\\b`, 'g');
    assert.match(text, word, `${name} has the placeholder ${k}`);
    text = text.replace(word, v);
  }
  const file = join(dir, name);
  writeFileSync(file, text, { mode: 0o600 });
  return file;
}

/** Only Teleport's spellings: every key of the file is one Teleport's tbot.yaml v2 has. */
function assertTeleportKeys(name: string): void {
  const doc = parse(readFileSync(join(FILES, name), 'utf8')) as Record<string, any>;
  const only = (obj: Record<string, unknown>, allowed: string[], where: string) => {
    for (const k of Object.keys(obj)) assert.ok(allowed.includes(k), `${name}: ${where}${k} is not a Teleport key`);
  };
  only(doc, TELEPORT_KEYS.top, '');
  only(doc.onboarding, TELEPORT_KEYS.onboarding, 'onboarding.');
  only(doc.storage, TELEPORT_KEYS.destination, 'storage.');
  for (const list of ['services', 'outputs'])
    for (const [i, o] of ((doc[list] ?? []) as Array<Record<string, any>>).entries()) {
      only(o, TELEPORT_KEYS.identity, `${list}[${i}].`);
      only(o.destination, TELEPORT_KEYS.destination, `${list}[${i}].destination.`);
    }
}

/** ssh-keygen -L reads the output's SSH certificate: a user certificate for `login`, valid now. */
async function assertSshCert(out: string, login: string): Promise<void> {
  const r = await run('ssh-keygen', ['-L', '-f', join(out, 'key-cert.pub')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Type: \S+-cert-v01@openssh\.com user certificate/);
  assert.match(r.stdout, new RegExp(`Principals:\\s*\\n\\s+${login}\\n`));
  // ssh-keygen prints local times without a zone, as Date reads such a string
  const valid = /Valid: from (\S+) to (\S+)/.exec(r.stdout);
  assert.ok(valid, r.stdout);
  const now = Date.now();
  assert.ok(Date.parse(valid[1]!) <= now && now < Date.parse(valid[2]!), `valid now: ${valid[0]}`);
}

/** openssl reads the output's TLS certificate: not expired, and signed by a CA in tlscacerts. */
async function assertTlsCert(out: string): Promise<void> {
  const cert = join(out, 'tlscert');
  const live = await run('openssl', ['x509', '-in', cert, '-noout', '-checkend', '0']);
  assert.equal(live.code, 0, `${live.stdout}${live.stderr}`);
  const verified = await run('openssl', ['verify', '-CAfile', join(out, 'tlscacerts'), cert]);
  assert.equal(verified.code, 0, `${verified.stdout}${verified.stderr}`);
  assert.match(verified.stdout, /: OK$/m);
}

const configure = async (file: string, env?: NodeJS.ProcessEnv) => {
  const r = await cli('tbot', ['configure', '-c', file], env ? { env } : {});
  assert.equal(r.code, 0, r.stderr);
  assert.equal((parse(r.stdout) as { version: string }).version, 'v2');
  return r;
};

/** GET `path` on the diagnostics server: status and body, or the connection error. */
async function diag(port: number, path: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`).catch((e: Error) => e);
  return res instanceof Error ? res.message : `${res.status} ${await res.text()}`;
}

/**
 * A daemon from `file`: waits for the outputs and /readyz/<first output> ready; SIGHUP (renew now, as
 * Teleport's tbot) then the whole /readyz ready; stops it with SIGTERM (exit 0). (A fresh join is
 * ready at once since issue #12: test/integration/tbot-startup.test.ts; here the SIGHUP is checked.)
 */
async function runDaemon(file: string, outs: string[], diagPort: number, first: string): Promise<string> {
  const tbot = spawnCli('tbot', ['start', '-c', file]);
  const ready = async (path: string) => {
    let last = '';
    await waitFor(`${path} ready`, async () => (last = await diag(diagPort, path)).startsWith('200 '), 20_000).catch(
      (e: Error) => assert.fail(`${e.message}: ${last}\n${tbot.out()}`),
    );
  };
  try {
    await waitFor('the outputs', () => outs.every((o) => existsSync(join(o, 'key-cert.pub'))), 30_000);
    await ready(`/readyz/${first}`);
    assert.match(await diag(diagPort, '/livez'), /^200 /);
    const renewed = () => (tbot.out().match(/renewed identity/g) ?? []).length;
    tbot.kill('SIGHUP');
    await waitFor('a renewal on SIGHUP', () => renewed() >= 1);
    await ready('/readyz');
  } finally {
    tbot.kill('SIGTERM');
    assert.equal(await exited(tbot), 0, tbot.out());
  }
  return tbot.out();
}

describe("Teleport-shaped tbot.yaml files run unchanged with mwi's tbot", () => {
  const tmp = tempDir('tbot-compat');
  let c: TestCluster;
  let gitlab: TestIssuer;
  let publicRoot: string;
  const me = userInfo().username;
  before(async () => {
    const pki = await makePublicPki(join(tmp.path));
    const leaf = await pki.issue('public', 'DNS:localhost,IP:127.0.0.1');
    publicRoot = pki.root;
    gitlab = await startIssuer({ issuer: GITLAB });
    // one cluster: its own CA for auth_server with a pin, a public certificate for proxy_server
    c = await startCluster(CLUSTER, `oidc:\n  endpoint_overrides:\n    "${GITLAB}": "${gitlab.url}"\n`, [
      '--tls-cert',
      leaf.cert,
      '--tls-key',
      leaf.key,
    ]);
  });
  after(async () => {
    await c?.stop();
    await gitlab?.close();
    tmp.cleanup();
  });

  it('the files use only the keys Teleport spells', () => {
    const files = readdirSync(FILES).filter((f) => f.endsWith('.yaml'));
    assert.deepEqual(files.sort(), ['bound-keypair-daemon.yaml', 'ci-oneshot.yaml', 'vm-daemon.yaml']);
    for (const f of files) assertTeleportKeys(f);
  });

  it('vm-daemon.yaml: token from a file, directory storage, three outputs with readers, /readyz, SIGTERM', async () => {
    const dir = join(tmp.path, 'vm');
    const token = await c.addBot('vm', ['deploy']);
    const tokenFile = join(tmp.path, 'vm-token');
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const diagPort = await freePort();
    const gid = String(process.getgid!());
    const file = fill(
      'vm-daemon.yaml',
      {
        AUTH_ADDR: c.addr,
        TOKEN_FILE: tokenFile,
        CA_PIN: c.caPin,
        DIR: dir,
        DIAG_ADDR: `127.0.0.1:${diagPort}`,
        READER: me,
        READER_GID: gid,
      },
      tmp.path,
    );
    await configure(file);
    const outs = ['deploy', 'backup', 'legacy'].map((o) => join(dir, o));
    const log = await runDaemon(file, outs, diagPort, 'deploy');
    assert.match(log, /joined bot=vm/);
    assert.match(log, /^\S+ DEBUG \[/m, 'debug: true logs at debug level');
    assert.doesNotMatch(log, /ACLs cannot be set/, 'acls: try set the ACLs');
    for (const o of outs) {
      await assertSshCert(o, 'deploy');
      await assertTlsCert(o);
    }
    // ssh_config: off on the second output only
    assert.ok(existsSync(join(outs[0]!, 'ssh_config')) && existsSync(join(outs[2]!, 'ssh_config')));
    assert.ok(!existsSync(join(outs[1]!, 'ssh_config')) && !existsSync(join(outs[1]!, 'known_hosts')));
    // readers: the reader's ACL entries are on the keys
    const acl = async (f: string) => (await run('getfacl', ['--omit-header', '--numeric', f])).stdout;
    const uid = String(process.getuid!());
    assert.match(await acl(join(outs[0]!, 'key')), new RegExp(`^user:${uid}:r--$`, 'm'));
    const backupAcl = await acl(join(outs[1]!, 'key'));
    assert.match(backupAcl, new RegExp(`^user:${uid}:r--$`, 'm'));
    assert.match(backupAcl, new RegExp(`^group:${gid}:r--$`, 'm'));
    // the single-use token is spent: a second run resumes from the directory storage
    const again = await cli('tbot', ['start', '-c', file, '--oneshot']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /resumed identity from storage/);
  });

  it('ci-oneshot.yaml: gitlab through proxy_server (publicly trusted, no pin), memory storage, exit 0', async () => {
    const dir = join(tmp.path, 'ci');
    await c.addBot('ci', ['deploy']);
    const tokenDoc = join(tmp.path, 'gitlab-token.yaml');
    writeFileSync(
      tokenDoc,
      'kind: token\nversion: v2\nmetadata: { name: gitlab-ci }\nspec:\n  join_method: gitlab\n  bot_name: ci\n' +
        '  gitlab:\n    allow: [{ project_path: "grp/app", ref_type: branch }]\n',
    );
    await c.tctlOk(['create', '-f', tokenDoc]);
    const port = c.addr.split(':')[1]!;
    const file = fill(
      'ci-oneshot.yaml',
      { PROXY_ADDR: `localhost:${port}`, TOKEN_NAME: 'gitlab-ci', DIR: dir },
      tmp.path,
    );
    const idToken = await gitlab.sign({
      sub: 'project_path:grp/app:ref_type:branch:ref:main',
      project_path: 'grp/app',
      ref_type: 'branch',
      aud: CLUSTER,
    });
    // the variable onboarding.gitlab.token_env_var_name names, and the public CA in Node's trust store
    const env = { GITLAB_ID_TOKEN: idToken, NODE_EXTRA_CA_CERTS: publicRoot };
    await configure(file, env);
    const r = await cli('tbot', ['start', '-c', file], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /verifying proxy_server with the system trust store/);
    const out = join(dir, 'ci-out');
    await assertSshCert(out, 'deploy');
    await assertTlsCert(out);
    assert.ok(!existsSync(join(out, 'ssh_config')) && !existsSync(join(out, 'known_hosts')), 'ssh_config: off');
    assert.ok(!existsSync(join(dir, 'storage')), 'memory storage writes nothing');
    const joined = c.audit().filter((e) => e.event === 'bot.join' && e.join_method === 'gitlab');
    assert.equal(joined.length, 1);
    assert.equal(joined[0]!.success, true, joined[0]!.reason);
  });

  it('bound-keypair-daemon.yaml: registration secret, directory storage, one output, /readyz, SIGTERM', async () => {
    const dir = join(tmp.path, 'bk');
    await c.addBot('keeper', ['deploy']);
    const added = JSON.parse(
      await c.tctlOk(
        ['tokens', 'add', '--type=bot', '--bot-name', 'keeper', '--join-method', 'bound_keypair'].concat([
          '--format',
          'json',
        ]),
      ),
    ) as { token: string; registration_secret: string };
    const diagPort = await freePort();
    const file = fill(
      'bound-keypair-daemon.yaml',
      {
        AUTH_ADDR: c.addr,
        TOKEN_NAME: added.token,
        CA_PIN: c.caPin,
        REGISTRATION_SECRET: added.registration_secret,
        DIR: dir,
        DIAG_ADDR: `127.0.0.1:${diagPort}`,
      },
      tmp.path,
    );
    await configure(file);
    const out = join(dir, 'out');
    const log = await runDaemon(file, [out], diagPort, 'output-0');
    assert.match(log, /bound keypair join/);
    await assertSshCert(out, 'deploy');
    await assertTlsCert(out);
    const status = JSON.parse(await c.tctlOk(['get', `token/${added.token}`, '--format', 'json']))[0].status;
    assert.match(status.bound_keypair.bound_public_key, /^ssh-ed25519 /);
    // the key bound at the first join is in the directory storage: a second run resumes with it
    const again = await cli('tbot', ['start', '-c', file, '--oneshot']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /resumed identity from storage/);
  });
});
