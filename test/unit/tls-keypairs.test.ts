import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AUTH_SERVER_NAME } from '../../src/api/wire.js';
import { loadAuthConfig } from '../../src/auth/config.js';
import { loadKeypair, ServingCertificates, type KeypairFiles } from '../../src/auth/tls-keypairs.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { createCA, issueCertificate, loadCA, type LoadedCA } from '../../src/crypto/x509.js';
import { isMwiError } from '../../src/errors.js';
import { tempDir } from '../helpers/procs.js';

const HOUR = 3600_000;

describe('the operator certificate files (--tls-cert/--tls-key, https_keypairs)', () => {
  const dir = tempDir('keypairs');
  let ca: LoadedCA;
  before(async () => {
    ca = await loadCA(await createCA('Operator CA', 'test'));
  });
  after(() => dir.cleanup());

  /** A server certificate for `dns`, valid for an hour from `now`, written as NAME.pem / NAME.key. */
  async function keypair(name: string, dns: string[], now = Date.now(), ips: string[] = []): Promise<KeypairFiles> {
    const keys = await generateKeys('ec-p256');
    const { certPem } = await issueCertificate({
      ca,
      publicKey: createPublicKey(keys.publicKeyPem).export({ type: 'spki', format: 'der' }),
      commonName: name,
      ttlMs: HOUR,
      usage: 'server',
      dnsNames: dns,
      ipAddresses: ips,
      now,
    });
    const certFile = join(dir.path, `${name}.pem`);
    const keyFile = join(dir.path, `${name}.key`);
    writeFileSync(certFile, certPem + ca.certPem);
    writeFileSync(keyFile, keys.privateKeyPem);
    return { certFile, keyFile, certField: '--tls-cert', keyField: '--tls-key' };
  }

  function refused(files: KeypairFiles, field: string, message: RegExp): void {
    assert.throws(
      () => loadKeypair(files, Date.now()),
      (e: unknown) => isMwiError(e, 'BAD_CONFIG') && e.field === field && message.test(e.message),
    );
  }

  it('a good keypair: the whole chain is served, the leaf parsed', async () => {
    const files = await keypair('good', ['mwi.example.com']);
    const k = loadKeypair(files, Date.now());
    assert.equal(k.cert.match(/BEGIN CERTIFICATE/g)?.length, 2);
    assert.equal(k.leaf.subjectAltName, 'DNS:mwi.example.com');
  });

  it('an expired certificate, one not yet valid, and a key of another certificate are refused, naming the field', async () => {
    refused(await keypair('expired', ['x.example'], Date.now() - 3 * HOUR), '--tls-cert', /expired at 20/);
    refused(await keypair('early', ['x.example'], Date.now() + 3 * HOUR), '--tls-cert', /is not valid before 20/);
    const a = await keypair('a', ['x.example']);
    const b = await keypair('b', ['x.example']);
    refused({ ...a, keyFile: b.keyFile }, '--tls-key', /the key in \S+b\.key does not match the certificate in/);
    const garbage = join(dir.path, 'garbage');
    writeFileSync(garbage, 'hello\n');
    refused({ ...a, keyFile: garbage }, '--tls-key', /no PEM private key in/);
    refused({ ...a, certFile: garbage }, '--tls-cert', /no PEM certificate in/);
    refused({ ...a, certFile: join(dir.path, 'absent') }, '--tls-cert', /file \S+absent does not exist/);
  });

  it("a client asking for AUTH_SERVER_NAME gets mwi's own certificate, one asking for the operator's names the operator's", async () => {
    const own = await keypair('own', [AUTH_SERVER_NAME]);
    const own1 = loadKeypair(own, Date.now());
    const certs = new ServingCertificates([ca.certPem], { cert: own1.cert, key: own1.key });
    assert.ok(certs.pick(AUTH_SERVER_NAME), 'its own, also without operator certificates');
    assert.equal(certs.pick('mwi.example.com'), undefined, 'the default: its own');
    assert.equal(certs.options().cert, own1.cert);
    const first = loadKeypair(await keypair('first', ['mwi.example.com']), Date.now());
    const second = loadKeypair(await keypair('second', ['*.other.example']), Date.now());
    certs.setOperator([first, second]);
    assert.equal(certs.options().cert, first.cert, "the default (no name asked for): the operator's first");
    assert.notEqual(certs.pick(AUTH_SERVER_NAME.toUpperCase()), undefined);
    assert.notEqual(certs.pick('a.other.example'), certs.pick(AUTH_SERVER_NAME));
    assert.notEqual(certs.pick('a.other.example'), undefined);
    assert.equal(certs.pick('unknown.example'), undefined, 'the default');
  });

  it("publicAddrs: the operator certificates' names with the port, DNS first, no wildcard, each once", async () => {
    const own = loadKeypair(await keypair('own2', [AUTH_SERVER_NAME]), Date.now());
    const certs = new ServingCertificates([ca.certPem], { cert: own.cert, key: own.key });
    assert.deepEqual(certs.publicAddrs(443), [], 'none without an operator certificate (its own is no public one)');
    const a = loadKeypair(
      await keypair('pa', ['MWI.example.com', '*.example.com'], Date.now(), ['203.0.113.7']),
      Date.now(),
    );
    const b = loadKeypair(
      await keypair('pb', ['mwi.example.com', 'alt.example.com'], Date.now(), ['2001:db8::1']),
      Date.now(),
    );
    certs.setOperator([a, b]);
    assert.deepEqual(certs.publicAddrs(443), [
      'mwi.example.com:443',
      'alt.example.com:443',
      '203.0.113.7:443',
      '[2001:db8:0:0:0:0:0:1]:443',
    ]);
  });
});

describe('mwi.yaml https_keypairs and the --tls-cert/--tls-key flags', () => {
  const dir = tempDir('keypairs-config');
  after(() => dir.cleanup());
  const yaml = (text: string) => {
    const file = join(dir.path, 'mwi.yaml');
    writeFileSync(file, text);
    return file;
  };

  it("Teleport's proxy_service names, each naming its key for errors; the flags replace them", () => {
    const file = yaml(
      'https_keypairs:\n  - { key_file: /k1, cert_file: /c1 }\n  - { key_file: /k2, cert_file: /c2 }\n' +
        'https_keypairs_reload_interval: 1h\n',
    );
    const cfg = loadAuthConfig(file, {});
    assert.deepEqual(cfg.httpsKeypairs[1], {
      certFile: '/c2',
      keyFile: '/k2',
      certField: `${file}: https_keypairs[1].cert_file`,
      keyField: `${file}: https_keypairs[1].key_file`,
    });
    assert.equal(cfg.httpsKeypairsReloadMs, HOUR);
    const flags = loadAuthConfig(file, { 'tls-cert': '/fc', 'tls-key': '/fk' });
    assert.deepEqual(flags.httpsKeypairs, [
      { certFile: '/fc', keyFile: '/fk', certField: '--tls-cert', keyField: '--tls-key' },
    ]);
    assert.deepEqual(loadAuthConfig(undefined, {}).httpsKeypairs, []);
    assert.equal(loadAuthConfig(undefined, {}).httpsKeypairsReloadMs, 0);
  });

  it('refuses half a keypair, unknown keys in an entry, and a reload interval under a second', () => {
    const bad = (text: string, flags: Record<string, string>, field: RegExp, message: RegExp) =>
      assert.throws(
        () => loadAuthConfig(text ? yaml(text) : undefined, flags),
        (e: unknown) => isMwiError(e, 'BAD_CONFIG') && field.test(e.field ?? '') && message.test(e.message),
      );
    bad('', { 'tls-cert': '/c' }, /^--tls-key$/, /needed with --tls-cert/);
    bad('', { 'tls-key': '/k' }, /^--tls-cert$/, /needed with --tls-key/);
    bad('https_keypairs:\n  - { cert_file: /c }\n', {}, /https_keypairs\[0\]\.key_file$/, /Required/);
    bad('https_keypairs:\n  - { cert_file: /c, key_file: /k, password: x }\n', {}, /\[0\]\.password$/, /unknown key/);
    bad('https_keypairs_reload_interval: 10ms\n', {}, /https_keypairs_reload_interval$/, /at least 1s/);
    bad('tls_cert_file: /c\n', {}, /tls_cert_file$/, /https_keypairs/);
  });
});
