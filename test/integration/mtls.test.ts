import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateKeys } from '../../src/crypto/keys.js';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { cli, run } from '../helpers/procs.js';

/** The bot's X.509 credentials against the Auth Service with real curl and openssl. */
describe('mTLS with issued X.509 certificates (curl, openssl)', () => {
  let cluster: TestCluster;
  let out: string;
  let storage: string;
  let url: string;

  before(async () => {
    cluster = await startCluster();
    const token = await cluster.addBot('tls-bot', ['deploy']);
    out = join(cluster.dir, 'out');
    storage = join(cluster.dir, 'bot');
    const r = await cli('tbot', ['start', ...tbotFlags(cluster, token, storage, out), '--oneshot']);
    assert.equal(r.code, 0, r.stderr);
    url = `https://${cluster.addr}`;
  });

  after(async () => cluster?.stop());

  const curl = (args: string[]) => run('curl', ['-sS', '--max-time', '10', '-w', '\n%{http_code}', ...args]);

  it('curl with the output tlscert/key and tlscacerts is accepted (the server is verified by tlscacerts)', async () => {
    const r = await curl([
      '--cacert',
      join(out, 'tlscacerts'),
      '--cert',
      join(out, 'tlscert'),
      '--key',
      join(out, 'key'),
      `${url}/v1/ping`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /"cluster_name":"test-cluster"[\s\S]*\n200$/);
  });

  it("curl renews with the bot's internal identity on the renew endpoint", async () => {
    const id = (
      JSON.parse(readFileSync(join(storage, 'state.json'), 'utf8')) as {
        identity: { tls_cert: string; key: string; generation: number };
      }
    ).identity;
    writeFileSync(join(cluster.dir, 'int.crt'), id.tls_cert);
    writeFileSync(join(cluster.dir, 'int.key'), id.key, { mode: 0o600 });
    const body = JSON.stringify({ public_key: (await generateKeys('ec-p256')).publicKeyPem });
    const r = await curl([
      '--cacert',
      join(out, 'tlscacerts'),
      '--cert',
      join(cluster.dir, 'int.crt'),
      '--key',
      join(cluster.dir, 'int.key'),
      '-H',
      'content-type: application/json',
      '--data',
      body,
      `${url}/v1/renew`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const [json, status] = [
      r.stdout.slice(0, r.stdout.lastIndexOf('\n')),
      r.stdout.slice(r.stdout.lastIndexOf('\n') + 1),
    ];
    assert.equal(status, '200', json);
    assert.equal(JSON.parse(json).generation, id.generation + 1);
  });

  it('an output certificate may not renew', async () => {
    const r = await curl([
      '--cacert',
      join(out, 'tlscacerts'),
      '--cert',
      join(out, 'tlscert'),
      '--key',
      join(out, 'key'),
      '-H',
      'content-type: application/json',
      '--data',
      '{}',
      `${url}/v1/renew`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /RENEW_DENIED[\s\S]*\n403$/);
  });

  it('a client certificate from another CA is refused at the TLS layer', async () => {
    const d = cluster.dir;
    const ossl = async (args: string[]) => {
      const r = await run('openssl', args);
      assert.equal(r.code, 0, r.stderr);
    };
    await ossl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      join(d, 'evil-ca.key'),
      '-out',
      join(d, 'evil-ca.crt'),
      '-subj',
      '/CN=evil',
      '-days',
      '1',
    ]);
    await ossl([
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      join(d, 'evil.key'),
      '-out',
      join(d, 'evil.csr'),
      '-subj',
      '/CN=bot-tls-bot',
    ]);
    await ossl([
      'x509',
      '-req',
      '-in',
      join(d, 'evil.csr'),
      '-CA',
      join(d, 'evil-ca.crt'),
      '-CAkey',
      join(d, 'evil-ca.key'),
      '-out',
      join(d, 'evil.crt'),
      '-days',
      '1',
    ]);
    const r = await curl([
      '--cacert',
      join(out, 'tlscacerts'),
      '--cert',
      join(d, 'evil.crt'),
      '--key',
      join(d, 'evil.key'),
      `${url}/v1/ping`,
    ]);
    assert.notEqual(r.code, 0, `curl got an answer: ${r.stdout}`);
    assert.doesNotMatch(r.stdout, /cluster_name/);
    // and openssl s_client sees the connection closed right after the handshake
    const s = await run(
      'openssl',
      [
        's_client',
        '-connect',
        cluster.addr,
        '-tls1_3',
        '-CAfile',
        join(out, 'tlscacerts'),
        '-cert',
        join(d, 'evil.crt'),
        '-key',
        join(d, 'evil.key'),
      ],
      {
        input: 'GET /v1/ping HTTP/1.1\r\nHost: x\r\n\r\n',
      },
    );
    assert.doesNotMatch(s.stdout, /HTTP\/1.1 200/);
  });

  it('without tlscacerts the server is not trusted (not a public CA)', async () => {
    const r = await curl([`${url}/v1/ping`]);
    assert.notEqual(r.code, 0);
  });
});
