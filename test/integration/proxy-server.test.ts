// proxy_server (issue #11): `mwi start --tls-cert/--tls-key` (or mwi.yaml `https_keypairs`) serves
// an operator's certificate from a "public" CA made for the test; tbot joins with --proxy-server
// and no pin, trusting that CA only through NODE_EXTRA_CA_CERTS, as it would a real public one.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { connect, type PeerCertificate } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { adminIdentityPath, readIdentityFile } from '../../src/api/local.js';
import { AUTH_SERVER_NAME } from '../../src/api/wire.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { launchAuth } from '../helpers/launch-auth.js';
import { cli, exited, spawnCli, tempDir, waitFor } from '../helpers/procs.js';
import { makePublicPki, type PublicPki } from '../helpers/public-pki.js';

/** The certificate the server at `addr` presents to a client asking for `servername` (none: no SNI). */
function served(addr: string, opts: { ca: string[]; servername?: string }): Promise<PeerCertificate> {
  const [host, port] = addr.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const s = connect({ host, port: Number(port), ca: opts.ca, servername: opts.servername, minVersion: 'TLSv1.3' });
    s.once('secureConnect', () => {
      resolve(s.getPeerCertificate());
      s.end();
    });
    s.once('error', reject);
  });
}

/** GET `path` on the public name (no SNI) with a client certificate; the status code. */
function getWithClientCert(addr: string, path: string, tls: { ca: string; cert: string; key: string }) {
  const [host, port] = addr.split(':') as [string, string];
  return new Promise<number>((resolve, reject) => {
    const req = request({ host, port: Number(port), path, ...tls, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.once('error', reject);
    req.end();
  });
}

const read = (f: string) => readIdentityFile(f)!;
const text = (f: string) => readFileSync(f, 'utf8');

describe('tbot --proxy-server against mwi start --tls-cert (a publicly trusted certificate)', () => {
  const dir = tempDir('proxy');
  let pki: PublicPki;
  let leaf: { cert: string; key: string };
  let c: TestCluster;
  /** tbot's environment with the public CA in its trust store. */
  let trusted: NodeJS.ProcessEnv;
  before(async () => {
    pki = await makePublicPki(dir.path);
    leaf = await pki.issue('public', 'DNS:localhost,IP:127.0.0.1');
    trusted = { NODE_EXTRA_CA_CERTS: pki.root };
    c = await startCluster('proxy.example', undefined, ['--tls-cert', leaf.cert, '--tls-key', leaf.key]);
  });
  after(async () => {
    await c?.stop();
    dir.cleanup();
  });
  const out = (name: string) => join(dir.path, name);

  it('without the public CA in its trust store, tbot is refused before it sends its token, and says what to do', async () => {
    const token = await c.addBot('untrusted', ['deploy']);
    const args = ['start', '--proxy-server', c.addr, '--token', token, '--oneshot', '--destination-dir', out('u1')];
    const r = await cli('tbot', args);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /the certificate of the Auth Service at 127\.0\.0\.1:\d+ is not trusted by this machine/);
    assert.match(r.stderr, /NODE_EXTRA_CA_CERTS=FILE[\s\S]*onboarding\.ca_pins \(--ca-pin/);
    assert.equal(existsSync(join(out('u1'), 'tlscert')), false);
    // nothing was sent: the single-use token is still there for a tbot that trusts the CA
    const ok = await cli('tbot', ['start', '--proxy-server', c.addr, '--token', token, '--oneshot'], {
      env: trusted,
    });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /verifying proxy_server with the system trust store/);
  });

  it('with it, tbot joins with --proxy-server and no pin, writes its outputs and renews', async () => {
    const token = await c.addBot('public', ['deploy']);
    // by name: the server picks the operator's certificate for the name tbot asks for
    const byName = `localhost:${c.addr.split(':')[1]}`;
    const tbot = spawnCli(
      'tbot',
      [
        'start',
        '--proxy-server',
        byName,
        '--token',
        token,
        '--data-dir',
        out('s2'),
        '--destination-dir',
        out('o2'),
      ].concat(['--certificate-ttl', '30s', '--renewal-interval', '1s']),
      trusted,
    );
    try {
      await waitFor('a join, outputs and two renewals', () => {
        const log = tbot.out();
        return /joined/.test(log) && /wrote output/.test(log) && (log.match(/renewed identity/g) ?? []).length >= 2;
      });
      assert.ok(existsSync(join(out('o2'), 'tlscert')));
      assert.ok(existsSync(join(out('o2'), 'key-cert.pub')));
    } finally {
      tbot.kill('SIGTERM');
      assert.equal(await exited(tbot), 0, tbot.out());
    }
    // a restart resumes over mTLS verified with the cluster's CA: no public CA in this environment, and
    // TELEPORT_PROXY stands for the flag, as in Teleport
    const again = await cli('tbot', ['start', '--data-dir', out('s2'), '--token', token, '--oneshot'], {
      env: { TELEPORT_PROXY: c.addr },
    });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /resumed identity from storage/);
    assert.equal(c.audit().filter((e) => e.event === 'bot.join' && e.success && e.bot_name === 'public').length, 1);
  });

  it('pins win over the trust store: the cluster pin joins without the public CA; a wrong pin is refused with it', async () => {
    const token = await c.addBot('pinned', ['deploy']);
    const wrong = await cli(
      'tbot',
      ['start', '--proxy-server', c.addr, '--ca-pin', `sha256:${'ab'.repeat(32)}`, '--token', token, '--oneshot'],
      { env: trusted },
    );
    assert.equal(wrong.code, 1, wrong.stderr);
    assert.match(wrong.stderr, /presented no CA matching the configured CA pin/);
    const pinned = await cli(
      'tbot',
      ['start', '--proxy-server', c.addr, '--ca-pin', c.caPin, '--token', token].concat(['--oneshot']),
    );
    assert.equal(pinned.code, 0, pinned.stderr);
    assert.match(pinned.stderr, /joined bot=pinned/);
  });

  it('tctl keeps working: from the data dir, and with --auth-server and --identity', async () => {
    assert.match(await c.tctlOk(['status']), /Cluster\s+proxy\.example/);
    const port = c.addr.split(':')[1]!;
    const r = await cli(
      'tctl',
      ['--auth-server', `localhost:${port}`, '--identity', adminIdentityPath(c.dataDir)].concat(['status']),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`CA pin\\s+${c.caPin}`));
  });

  it("the operator's chain is served whole to public clients, mwi's own certificate to its own clients", async () => {
    const root = pki.root;
    const admin = read(adminIdentityPath(c.dataDir));
    // only the root is trusted: the intermediate must come from the server
    const pub = await served(c.addr, { ca: [text(root)] });
    assert.equal(pub.issuer.CN, 'Test Public R1');
    const own = await served(c.addr, { ca: admin.ca_certs, servername: AUTH_SERVER_NAME });
    assert.equal(own.subject.CN, AUTH_SERVER_NAME);
    // and on the public certificate, client certificates are still verified against mwi's CA
    const ca = text(root);
    assert.equal(await getWithClientCert(c.addr, '/v1/admin/status', { ca, cert: admin.cert, key: admin.key }), 200);
    const foreign = await pki.issue('foreign-client', 'DNS:client.example');
    await assert.rejects(
      getWithClientCert(c.addr, '/v1/admin/status', {
        ca,
        cert: text(foreign.cert),
        key: text(foreign.key),
      }),
      /socket hang up|ECONNRESET|EPIPE/,
    );
  });

  it('SIGHUP reads the files again; files that fail the checks are logged and the old ones kept', async () => {
    const next = await pki.issue('public-next', 'DNS:localhost,IP:127.0.0.1');
    const ca = [text(pki.root)];
    const before = (await served(c.addr, { ca })).serialNumber;
    copyFileSync(next.key, leaf.key);
    copyFileSync(next.cert, leaf.cert);
    c.proc.kill('SIGHUP');
    await waitFor('the reload', () => /reloaded the operator certificate/.test(c.proc.out()));
    const after = (await served(c.addr, { ca })).serialNumber;
    assert.notEqual(after, before);
    writeFileSync(leaf.cert, 'not a certificate\n');
    c.proc.kill('SIGHUP');
    await waitFor('the refused reload', () => /was not reloaded; still serving the previous one/.test(c.proc.out()));
    assert.match(c.proc.out(), /--tls-cert: no PEM certificate in/);
    assert.equal((await served(c.addr, { ca })).serialNumber, after);
    assert.equal(c.proc.exitCode, null, 'still running');
  });
});

describe('mwi.yaml https_keypairs, checked at start and reloaded on https_keypairs_reload_interval', () => {
  const dir = tempDir('proxy-yaml');
  let pki: PublicPki;
  let c: TestCluster;
  let files: { cert: string; key: string };
  before(async () => {
    pki = await makePublicPki(dir.path);
    // a certificate from the trusted CA, but for a name tbot will not dial
    files = await pki.issue('served', 'DNS:wrong.example');
    c = await startCluster(
      'yaml.example',
      `https_keypairs:\n  - key_file: ${files.key}\n    cert_file: ${files.cert}\nhttps_keypairs_reload_interval: 1s\n`,
    );
  });
  after(async () => {
    await c?.stop();
    dir.cleanup();
  });

  it('a certificate for another name is refused; the right one, written in place, is picked up without a restart', async () => {
    const token = await c.addBot('named', ['deploy']);
    const env = { NODE_EXTRA_CA_CERTS: pki.root };
    const args = ['start', '--proxy-server', c.addr, '--token', token, '--oneshot'];
    const wrong = await cli('tbot', args, { env });
    assert.equal(wrong.code, 1, wrong.stderr);
    assert.match(wrong.stderr, /is not valid for that name \(.*IP: 127\.0\.0\.1 is not in the cert's list/);
    const right = await pki.issue('right', 'IP:127.0.0.1');
    copyFileSync(right.key, files.key);
    copyFileSync(right.cert, files.cert);
    await waitFor('the reload', () => /reloaded the operator certificate/.test(c.proc.out()));
    const ok = await cli('tbot', args, { env });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(await c.tctlOk(['status']), /Cluster\s+yaml\.example/);
  });
});

describe('with --workers, SIGHUP to mwi start reaches every worker', () => {
  const dir = tempDir('proxy-workers');
  after(() => dir.cleanup());

  it('each worker reloads the files and serves the new certificate', async () => {
    const pki = await makePublicPki(dir.path);
    const files = await pki.issue('w', 'IP:127.0.0.1');
    const auth = await launchAuth({
      clusterName: 'workers.example',
      args: ['--workers', '2', '--tls-cert', files.cert, '--tls-key', files.key],
    });
    try {
      const started = () => auth.proc.out().match(/serving the operator certificate/g)?.length === 2;
      await waitFor('both workers serving', started);
      const next = await pki.issue('w-next', 'IP:127.0.0.1');
      copyFileSync(next.key, files.key);
      copyFileSync(next.cert, files.cert);
      auth.proc.kill('SIGHUP');
      await waitFor('both workers', () => auth.proc.out().match(/reloaded the operator certificate/g)?.length === 2);
      const serial = new X509Certificate(text(next.cert)).serialNumber;
      // new connections are spread over the workers: every one of them now serves the new certificate
      for (let i = 0; i < 6; i++)
        assert.equal((await served(auth.addr, { ca: [text(pki.root)] })).serialNumber, serial);
    } finally {
      await auth.stop();
    }
  });
});

describe('mwi start refuses bad certificate files, naming the flag, before it creates anything', () => {
  const dir = tempDir('proxy-bad');
  let pki: PublicPki;
  before(async () => {
    pki = await makePublicPki(dir.path);
  });
  after(() => dir.cleanup());

  it('missing, half given, a key of another certificate, and with --workers the error is printed once', async () => {
    const a = await pki.issue('a', 'DNS:localhost');
    const b = await pki.issue('b', 'DNS:localhost');
    const dataDir = join(dir.path, 'auth');
    const start = (args: string[]) => cli('mwi', ['start', '--data-dir', dataDir, '--listen', '127.0.0.1:0', ...args]);
    const cases: Array<[string[], RegExp]> = [
      [['--tls-cert', join(dir.path, 'none.pem'), '--tls-key', a.key], /--tls-cert: file \S+none\.pem does not exist/],
      [['--tls-cert', a.cert, '--tls-key', dir.path], /--tls-key: cannot read \S+: EISDIR/],
      [['--tls-cert', a.cert], /--tls-key: needed with --tls-cert/],
      [['--tls-cert', a.cert, '--tls-key', b.key], /--tls-key: the key in \S+b\.key does not match the certificate/],
      [['--tls-cert', a.key, '--tls-key', a.key], /--tls-cert: no PEM certificate in \S+a\.key/],
    ];
    for (const [args, message] of cases) {
      const r = await start(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    const workers = await start(['--workers', '2', '--tls-cert', join(dir.path, 'none.pem'), '--tls-key', a.key]);
    assert.equal(workers.code, 2, workers.stderr);
    assert.equal(workers.stderr.match(/does not exist/g)?.length, 1, workers.stderr);
    assert.equal(existsSync(dataDir), false, 'no data dir was created');
  });
});
