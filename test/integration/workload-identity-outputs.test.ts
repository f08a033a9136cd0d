import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { cli, exited, run, spawnCli, waitFor } from '../helpers/procs.js';
import { createIdentity, svidServer, workloadRoleBot } from '../helpers/workload-identity.js';

const identity = (name: string, path: string, dns = '') =>
  `kind: workload_identity\nversion: v1\nmetadata: { name: ${name}, labels: { team: out } }\n` +
  `spec:\n  spiffe:\n    id: ${path}\n${dns ? `    x509: { dns_sans: [${dns}] }\n` : ''}`;

describe('tbot outputs workload-identity-x509 and workload-identity-jwt', () => {
  let c: TestCluster;
  const dirs = { a: '', b: '', j: '' };
  let tbotRun: { code: number | null; stderr: string };
  before(async () => {
    c = await startCluster('outputs.example');
    await createIdentity(c, 'svc-a', identity('svc-a', '/svc/a'));
    await createIdentity(c, 'svc-b', identity('svc-b', '/svc/b', 'localhost'));
    const token = await workloadRoleBot(c, 'outbot', 'out');
    for (const k of ['a', 'b', 'j'] as const) dirs[k] = join(c.dir, `out-${k}`);
    const file = join(c.dir, 'tbot.yaml');
    writeFileSync(
      file,
      `version: v2\nauth_server: ${c.addr}\nonboarding:\n  join_method: token\n  token: ${token}\n` +
        `  ca_pins: ["${c.caPin}"]\noneshot: true\noutputs:\n` +
        `  - type: workload-identity-x509\n    selector: { name: svc-a }\n` +
        `    destination: { type: directory, path: ${dirs.a} }\n` +
        `  - type: workload-identity-x509\n    selector: { name: svc-b }\n` +
        `    destination: { type: directory, path: ${dirs.b} }\n` +
        `  - type: workload-identity-jwt\n    selector: { labels: { team: [out] } }\n    audiences: [vault.example]\n` +
        `    algorithm: RS256\n` +
        `    destination: { type: directory, path: ${dirs.j} }\n`,
    );
    tbotRun = await cli('tbot', ['start', '-c', file]);
  });
  after(async () => c?.stop());

  it("writes Teleport's files: svid.pem (one URI SAN), svid_key.pem (0600), svid_bundle.pem; openssl verifies", async () => {
    assert.equal(tbotRun.code, 0, tbotRun.stderr);
    const cert = new X509Certificate(readFileSync(join(dirs.a, 'svid.pem')));
    assert.equal(cert.subjectAltName, 'URI:spiffe://outputs.example/svc/a');
    assert.equal(statSync(join(dirs.a, 'svid_key.pem')).mode & 0o777, 0o600);
    assert.match(readFileSync(join(dirs.a, 'svid_key.pem'), 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
    assert.ok(
      cert.checkPrivateKey((await import('node:crypto')).createPrivateKey(readFileSync(join(dirs.a, 'svid_key.pem')))),
    );
    const v = await run('openssl', ['verify', '-CAfile', join(dirs.a, 'svid_bundle.pem'), join(dirs.a, 'svid.pem')]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.equal(
      readFileSync(join(dirs.a, 'svid_bundle.pem'), 'utf8'),
      await c.tctlOk(['auth', 'export', '--type', 'spiffe']),
    );
  });

  it('writes jwt_svid (0600) for the audiences; a labels selector matching two identities is named in a warning', async () => {
    const token = readFileSync(join(dirs.j, 'jwt_svid'), 'utf8');
    assert.equal(statSync(join(dirs.j, 'jwt_svid')).mode & 0o777, 0o600);
    const jwks = JSON.parse(await c.tctlOk(['auth', 'export', '--type', 'jwt']));
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(jwks), { audience: 'vault.example' });
    assert.equal(protectedHeader.alg, 'RS256');
    assert.equal(payload.sub, 'spiffe://outputs.example/svc/a');
    assert.match(tbotRun.stderr, /matches 2 workload identities; this output writes the first \(svc-a\) and not svc-b/);
  });

  it('an identity the bot is not granted fails that output, naming its selector', async () => {
    const token = await workloadRoleBot(c, 'deniedbot', 'nobody');
    const file = join(c.dir, 'tbot-denied.yaml');
    writeFileSync(
      file,
      `version: v2\nauth_server: ${c.addr}\nonboarding:\n  join_method: token\n  token: ${token}\n` +
        `  ca_pins: ["${c.caPin}"]\noneshot: true\noutputs:\n` +
        `  - type: workload-identity-x509\n    selector: { name: svc-a }\n` +
        `    destination: { type: directory, path: ${join(c.dir, 'denied')} }\n`,
    );
    const r = await cli('tbot', ['start', '-c', file]);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /workload_identity "svc-a" does not exist, is not granted to this bot.*\(selector name svc-a\)/,
    );
  });

  it('two workloads make an mTLS connection with their SVIDs (openssl s_server / s_client), each verifying the other', async () => {
    const server = await svidServer(
      { cert: join(dirs.b, 'svid.pem'), key: join(dirs.b, 'svid_key.pem'), bundle: join(dirs.b, 'svid_bundle.pem') },
      ['-www'],
    );
    try {
      const client = (withCert: boolean) =>
        new Promise<{ code: number | null; out: string }>((resolve) => {
          const p = spawn('openssl', [
            's_client',
            '-connect',
            `127.0.0.1:${server.port}`,
            '-servername',
            'localhost',
            '-verify_hostname',
            'localhost',
            '-CAfile',
            join(dirs.a, 'svid_bundle.pem'),
            '-verify_return_error',
            '-ign_eof',
            ...(withCert ? ['-cert', join(dirs.a, 'svid.pem'), '-key', join(dirs.a, 'svid_key.pem')] : []),
          ]);
          let out = '';
          p.stdout.on('data', (d: Buffer) => (out += d.toString()));
          p.stderr.on('data', (d: Buffer) => (out += d.toString()));
          p.on('close', (code) => resolve({ code, out }));
          p.stdin.end('GET / HTTP/1.0\r\n\r\n');
        });
      const ok = await client(true);
      assert.match(ok.out, /Verify return code: 0 \(ok\)/, ok.out);
      // the server's page shows the client's certificate: svc-a's SVID
      assert.match(ok.out, /Client certificate/, ok.out);
      assert.match(ok.out, /svc-a/, ok.out);
      const refused = await client(false);
      assert.doesNotMatch(refused.out, /Client certificate/);
    } finally {
      server.kill();
    }
  });
});

describe('a tbot daemon renews its SVIDs, and picks up a CA rotation', () => {
  let c: TestCluster;
  after(async () => c?.stop());

  it('svid.pem is replaced before it expires; after tctl auth rotate, SIGHUP writes the new CA into svid_bundle.pem', async () => {
    c = await startCluster('renew-svid.example');
    await createIdentity(c, 'svc-a', identity('svc-a', '/svc/a'));
    const token = await workloadRoleBot(c, 'renewbot', 'out');
    const out = join(c.dir, 'renew-out');
    const file = join(c.dir, 'tbot-daemon.yaml');
    writeFileSync(
      file,
      `version: v2\nauth_server: ${c.addr}\nonboarding:\n  join_method: token\n  token: ${token}\n` +
        `  ca_pins: ["${c.caPin}"]\nstorage: { type: directory, path: ${join(c.dir, 'renew-storage')} }\n` +
        `credential_ttl: 20s\nrenewal_interval: 2s\noutputs:\n` +
        `  - type: workload-identity-x509\n    selector: { name: svc-a }\n` +
        `    destination: { type: directory, path: ${out} }\n`,
    );
    const tbot = spawnCli('tbot', ['start', '-c', file]);
    try {
      const serial = () => {
        try {
          return new X509Certificate(readFileSync(join(out, 'svid.pem'))).serialNumber;
        } catch {
          return undefined;
        }
      };
      const first = await waitFor('the first svid.pem', serial);
      const firstCert = new X509Certificate(readFileSync(join(out, 'svid.pem')));
      assert.ok(
        Date.parse(firstCert.validTo) - Date.parse(firstCert.validFrom) <= 81_000,
        'a 20s SVID (+60s backdate)',
      );
      await waitFor('a renewed svid.pem', () => serial() !== first && serial() !== undefined);
      await c.tctlOk(['auth', 'rotate', '--type', 'spiffe']);
      tbot.kill('SIGHUP');
      const bundle = await waitFor(
        'svid_bundle.pem with two CAs',
        () => readFileSync(join(out, 'svid_bundle.pem'), 'utf8').match(/BEGIN CERTIFICATE/g)?.length === 2,
      );
      assert.ok(bundle);
      const v = await run('openssl', ['verify', '-CAfile', join(out, 'svid_bundle.pem'), join(out, 'svid.pem')]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
    } finally {
      tbot.kill('SIGTERM');
      await exited(tbot);
    }
  });
});
