import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createCA, issueCertificate, loadCA } from '../../src/crypto/x509.js';
import { run, tempDir } from '../helpers/procs.js';

const tmp = tempDir('keyusage');
after(tmp.cleanup);

/**
 * RFC 5480 section 3 / RFC 8410 section 5: an EC or Ed25519 key is a signing key; keyEncipherment
 * on its certificate claims a use the key cannot have (and lets a relying party pick RSA-style
 * key transport). Checked with openssl, not with our own parser.
 */
describe('no keyEncipherment on EC leaf certificates', () => {
  const cases = [
    ['ECDSA P-256', () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey, 'Digital Signature'],
    ['Ed25519', () => generateKeyPairSync('ed25519').publicKey, 'Digital Signature'],
    // RSA keys (not issued by mwi for bots, but accepted by the issuer) keep key transport
    ['RSA', () => generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey, 'Digital Signature, Key Encipherment'],
  ] as const;

  for (const [name, key, expected] of cases) {
    it(`a ${name} leaf gets KeyUsage "${expected}" (openssl x509 -text); its serial is the one openssl prints`, async () => {
      const ca = await loadCA(await createCA('test', 'mwi user CA'));
      for (const usage of ['client', 'server', 'client+server'] as const) {
        const { certPem, serial } = await issueCertificate({
          ca,
          publicKey: key().export({ type: 'spki', format: 'der' }),
          commonName: 'leaf',
          ttlMs: 60_000,
          usage,
        });
        const file = join(tmp.path, `${name}-${usage}.pem`);
        writeFileSync(file, certPem);
        const r = await run('openssl', ['x509', '-in', file, '-noout', '-text', '-serial']);
        assert.equal(r.code, 0, r.stderr);
        const ku = /X509v3 Key Usage: critical\n\s+(.*)\n/.exec(r.stdout)?.[1];
        assert.equal(ku, expected, r.stdout);
        assert.equal(/^serial=([0-9A-F]+)$/m.exec(r.stdout)?.[1]?.toLowerCase(), serial);
      }
    });
  }

  it('the CA itself keeps keyCertSign and cRLSign', async () => {
    const pair = await createCA('test', 'mwi user CA');
    writeFileSync(join(tmp.path, 'ca.pem'), pair.certPem);
    const r = await run('openssl', ['x509', '-in', join(tmp.path, 'ca.pem'), '-noout', '-text']);
    assert.match(r.stdout, /X509v3 Key Usage: critical\n\s+Certificate Sign, CRL Sign\n/);
    assert.ok(createPublicKey(pair.certPem));
  });
});
