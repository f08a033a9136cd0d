import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { findUtf8Extension } from '../../src/crypto/der.js';
import { generateKeys, parseClientKey, parseClientPublicKey, spkiPin } from '../../src/crypto/keys.js';
import { parseSshPublicKey, signSshCertificate, sshAuthorizedKey, sshPublicKeyBlob } from '../../src/crypto/ssh.js';
import { createCA, IDENTITY_OID, issueCertificate, loadCA } from '../../src/crypto/x509.js';
import { isMwiError } from '../../src/errors.js';
import { run, tempDir } from '../helpers/procs.js';

const tmp = tempDir('crypto');
after(tmp.cleanup);

describe('OpenSSH certificates (checked by ssh-keygen, not by ourselves)', () => {
  for (const type of ['ed25519', 'ecdsa', 'rsa'] as const) {
    it(`ssh-keygen -L reads a user certificate for a ${type} key signed by our Ed25519 CA`, async () => {
      const keyFile = join(tmp.path, `user-${type}`);
      assert.equal((await run('ssh-keygen', ['-q', '-t', type, '-N', '', '-f', keyFile])).code, 0);
      const ca = createPrivateKey((await generateKeys('ed25519')).privateKeyPem);
      const { blob } = parseSshPublicKey(readFileSync(`${keyFile}.pub`, 'utf8'), 'public_key');
      const now = Date.now();
      const { cert } = await signSshCertificate({
        caKey: ca,
        subjectBlob: blob,
        certType: 'user',
        keyId: 'bot-robot',
        principals: ['deploy', 'root'],
        validAfter: new Date(now - 60_000),
        validBefore: new Date(now + 3_600_000),
        extensions: ['permit-pty', 'permit-agent-forwarding'],
      });
      writeFileSync(`${keyFile}-cert.pub`, `${cert}\n`);
      const r = await run('ssh-keygen', ['-L', '-f', `${keyFile}-cert.pub`]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /user certificate/);
      assert.match(r.stdout, /Key ID: "bot-robot"/);
      assert.match(r.stdout, /Principals: \n\s+deploy\n\s+root\n/);
      assert.match(r.stdout, /Extensions: \n\s+permit-agent-forwarding\n\s+permit-pty\n/);
      assert.match(r.stdout, /Signing CA: ED25519/);
      // the CA fingerprint ssh-keygen reports is the one of our CA's public key
      writeFileSync(join(tmp.path, 'ca.pub'), `${sshAuthorizedKey(createPublicKey(ca))}\n`);
      const fp = (await run('ssh-keygen', ['-l', '-f', join(tmp.path, 'ca.pub')])).stdout.split(' ')[1]!;
      assert.ok(r.stdout.includes(fp), `${fp} not in ${r.stdout}`);
    });
  }

  it('our public key blobs are what ssh-keygen derives from the same private key', async () => {
    for (const alg of ['ec-p256', 'ed25519'] as const) {
      const k = await generateKeys(alg);
      const file = join(tmp.path, `k-${alg}`);
      const priv = createPrivateKey(k.privateKeyPem);
      writeFileSync(
        file,
        alg === 'ec-p256'
          ? priv.export({ type: 'sec1', format: 'pem' })
          : priv.export({ type: 'pkcs8', format: 'pem' }),
        { mode: 0o600 },
      );
      const r = await run('ssh-keygen', ['-y', '-f', file]);
      if (alg === 'ed25519' && r.code !== 0) continue; // older ssh-keygen cannot read PKCS#8 Ed25519
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim().split(' ').slice(0, 2).join(' '), sshAuthorizedKey(createPublicKey(k.publicKeyPem)));
      assert.ok(sshPublicKeyBlob(createPublicKey(k.publicKeyPem)).length > 0);
    }
  });

  it('rejects malformed and inconsistent OpenSSH public keys naming the field', () => {
    for (const bad of [
      '',
      'ssh-ed25519',
      'ssh-ed25519 !!!',
      `ssh-rsa ${Buffer.from('\0\0\0\x0bssh-ed25519').toString('base64')}`,
      'ssh-dss AAAAB3NzaC1kc3MAAACBAP',
    ]) {
      assert.throws(
        () => parseSshPublicKey(bad, 'public_key'),
        (e) => isMwiError(e, 'BAD_REQUEST') && /public_key/.test(e.message),
        bad,
      );
    }
  });
});

describe('X.509 (checked by openssl)', () => {
  it('a leaf issued by our CA passes openssl verify with the right purpose and carries the identity extension', async () => {
    const ca = await loadCA(await createCA('test', 'mwi user CA'));
    const k = await generateKeys('ec-p256');
    const { certPem } = await issueCertificate({
      ca,
      publicKey: createPublicKey(k.publicKeyPem).export({ type: 'spki', format: 'der' }),
      commonName: 'bot-robot',
      ttlMs: 3_600_000,
      usage: 'client',
      identity: { kind: 'bot', bot: 'robot', instance: 'i-1', generation: 7 },
    });
    writeFileSync(join(tmp.path, 'ca.pem'), ca.certPem);
    writeFileSync(join(tmp.path, 'leaf.pem'), certPem);
    const ok = await run('openssl', [
      'verify',
      '-purpose',
      'sslclient',
      '-CAfile',
      join(tmp.path, 'ca.pem'),
      join(tmp.path, 'leaf.pem'),
    ]);
    assert.equal(ok.code, 0, ok.stderr + ok.stdout);
    const wrongPurpose = await run('openssl', [
      'verify',
      '-purpose',
      'sslserver',
      '-CAfile',
      join(tmp.path, 'ca.pem'),
      join(tmp.path, 'leaf.pem'),
    ]);
    assert.notEqual(wrongPurpose.code, 0);
    const leaf = new X509Certificate(certPem);
    assert.match(leaf.subject, /CN=bot-robot/);
    assert.ok(Date.parse(leaf.validFrom) <= Date.now() - 59_000, 'NotBefore is backdated');
    assert.deepEqual(JSON.parse(findUtf8Extension(leaf.raw, IDENTITY_OID)!), {
      kind: 'bot',
      bot: 'robot',
      instance: 'i-1',
      generation: 7,
    });
    assert.equal(findUtf8Extension(leaf.raw, '1.3.9999.7.2'), undefined);
  });

  it('server certificates carry DNS, IPv4 and IPv6 SANs as openssl reads them', async () => {
    const ca = await loadCA(await createCA('test', 'mwi host CA'));
    const k = await generateKeys('ec-p256');
    const { certPem } = await issueCertificate({
      ca,
      publicKey: createPublicKey(k.publicKeyPem).export({ type: 'spki', format: 'der' }),
      commonName: 'auth',
      ttlMs: 60_000,
      usage: 'server',
      dnsNames: ['auth.mwi.cluster.local', 'localhost'],
      ipAddresses: ['127.0.0.1', '::1', 'fe80::1:2'],
      uris: ['spiffe://example.org/svc'],
    });
    writeFileSync(join(tmp.path, 'srv.pem'), certPem);
    const r = await run('openssl', [
      'x509',
      '-in',
      join(tmp.path, 'srv.pem'),
      '-noout',
      '-ext',
      'subjectAltName,extendedKeyUsage,keyUsage,basicConstraints',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /DNS:auth\.mwi\.cluster\.local, DNS:localhost, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1, IP Address:FE80:0:0:0:0:0:1:2, URI:spiffe:\/\/example\.org\/svc/,
    );
    assert.match(r.stdout, /TLS Web Server Authentication/);
    // an EC key cannot encipher: digitalSignature only (test/security/keyusage-ec-leaf.test.ts)
    assert.match(r.stdout, /critical\s+Digital Signature\n/);
    assert.match(r.stdout, /critical\s+CA:FALSE/);
  });

  it('the CA pin is sha256 of the SPKI, as openssl computes it', async () => {
    const pair = await createCA('test', 'mwi host CA');
    writeFileSync(join(tmp.path, 'host.pem'), pair.certPem);
    const pub = await run('openssl', ['x509', '-in', join(tmp.path, 'host.pem'), '-pubkey', '-noout']);
    writeFileSync(join(tmp.path, 'host.pub'), pub.stdout);
    const der = await run('bash', [
      '-c',
      `openssl pkey -pubin -in ${join(tmp.path, 'host.pub')} -outform DER | openssl dgst -sha256 -r`,
    ]);
    assert.equal(spkiPin(createPublicKey(pair.certPem)), `sha256:${der.stdout.split(' ')[0]}`);
  });

  it('parseClientPublicKey accepts P-256 and Ed25519 only', async () => {
    parseClientPublicKey((await generateKeys('ec-p256')).publicKeyPem, 'public_key');
    parseClientPublicKey((await generateKeys('ed25519')).publicKeyPem, 'public_key');
    const rsa = await run('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024']);
    const rsaPub = createPublicKey(rsa.stdout).export({ type: 'spki', format: 'pem' }).toString();
    assert.throws(() => parseClientPublicKey(rsaPub, 'public_key'), /public_key: unsupported key type rsa/);
    assert.throws(
      () => parseClientPublicKey('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n', 'public_key'),
      /public_key: not a valid PEM public key/,
    );
    assert.throws(() => parseClientPublicKey(42, 'public_key'), /public_key: expected a PEM public key/);
  });
});

describe('parseClientKey (the hot-path key parser)', () => {
  it('takes P-256 and Ed25519 SPKI PEMs and agrees with node:crypto', async () => {
    for (const alg of ['ec-p256', 'ed25519'] as const) {
      const k = await generateKeys(alg);
      const parsed = parseClientKey(k.publicKeyPem, 'public_key');
      assert.equal(parsed.type, alg);
      assert.deepEqual(parsed.spki, createPublicKey(k.publicKeyPem).export({ type: 'spki', format: 'der' }));
      assert.equal(parsed.raw.length, alg === 'ed25519' ? 32 : 65);
    }
  });
  it('refuses other keys and garbage with the field named', async () => {
    const rsa = await run('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024']);
    const rsaPub = createPublicKey(rsa.stdout).export({ type: 'spki', format: 'pem' }).toString();
    assert.throws(() => parseClientKey(rsaPub, 'public_key'), /public_key: unsupported key type rsa/);
    const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' })
      .publicKey.export({ type: 'spki', format: 'pem' })
      .toString();
    assert.throws(() => parseClientKey(p384, 'public_key'), /public_key: unsupported key type ec/);
    assert.throws(
      () => parseClientKey('-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n', 'public_key'),
      /public_key/,
    );
    assert.throws(() => parseClientKey(undefined, 'public_key'), /public_key: expected a PEM public key/);
  });
});
