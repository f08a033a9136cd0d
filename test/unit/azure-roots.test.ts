import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadAuthConfig } from '../../src/auth/config.js';
import { isMwiError } from '../../src/errors.js';
import { azureSection, DEFAULT_SIGNER_NAMES } from '../../src/join/azure/config.js';
import { AZURE_ROOTS } from '../../src/join/azure/roots.js';
import type { ServerDeps } from '../../src/join/types.js';
import { makeChain, type Chain } from '../helpers/azure.js';
import { tempDir } from '../helpers/procs.js';

const deps = {} as ServerDeps;

describe('the pinned Azure roots', () => {
  it("are Azure's five public roots: each parses, is the CA it names, self-signed, valid now, and has its fingerprint", () => {
    assert.deepEqual(
      AZURE_ROOTS.map((r) => r.name),
      [
        'DigiCert Global Root G2',
        'DigiCert Global Root CA',
        'DigiCert Global Root G3',
        'Microsoft RSA Root Certificate Authority 2017',
        'Microsoft ECC Root Certificate Authority 2017',
      ],
    );
    for (const r of AZURE_ROOTS) {
      const cert = new X509Certificate(r.pem);
      assert.match(cert.subject, new RegExp(`^CN=${r.name}$`, 'm'), r.name);
      assert.equal(cert.subject, cert.issuer, r.name);
      assert.ok(cert.ca && cert.verify(cert.publicKey), r.name);
      assert.equal(cert.fingerprint256.replace(/:/g, '').toLowerCase(), r.sha256, r.name);
      assert.ok(Date.parse(cert.validFrom) < Date.now() && Date.now() < Date.parse(cert.validTo), r.name);
    }
  });

  it('DigiCert Global Root G2, which IMDS attested data chains to, has its well-known fingerprint', () => {
    const g2 = new X509Certificate(AZURE_ROOTS[0]!.pem);
    assert.equal(
      g2.fingerprint256,
      'CB:3C:CB:B7:60:31:E5:E0:13:8F:8D:D3:9A:23:F9:DE:47:FF:C3:5E:43:C1:14:4C:EA:27:D4:6A:5A:B1:CB:5F',
    );
  });
});

describe('mwi.yaml azure: root_cas and signer_names', () => {
  const tmp = tempDir('azure-config');
  let chain: Chain;
  before(async () => {
    chain = await makeChain();
  });
  after(() => tmp.cleanup());
  const file = (name: string, text: string) => {
    const p = join(tmp.path, name);
    writeFileSync(p, text);
    return p;
  };
  const mwiYaml = (body: string) => file('mwi.yaml', body);
  const build = (o: unknown) => azureSection.build(azureSection.schema.parse(o), deps);

  it('without the section: the built-in roots and the default signer names', () => {
    const trust = build(undefined);
    assert.deepEqual(
      trust.roots.map((r) => r.fingerprint256.replace(/:/g, '').toLowerCase()),
      AZURE_ROOTS.map((r) => r.sha256),
    );
    assert.deepEqual(trust.signerNames, DEFAULT_SIGNER_NAMES);
    assert.deepEqual(DEFAULT_SIGNER_NAMES, [
      'metadata.azure.com',
      'metadata.azure.us',
      'metadata.azure.cn',
      'metadata.microsoftazure.de',
    ]);
  });

  it('root_cas replaces the built-in roots with every certificate of the files; signer_names the names', () => {
    const both = file('both.pem', chain.root.pem + chain.issuing.pem);
    const trust = build({ root_cas: [both], signer_names: ['metadata.example.test'] });
    assert.deepEqual(
      trust.roots.map((r) => r.subject),
      ['CN=Test Azure Root G2', 'CN=Test Azure RSA TLS Issuing CA 03'],
    );
    assert.deepEqual(trust.signerNames, ['metadata.example.test']);
  });

  it('a root file that is missing, empty of certificates or broken is refused naming azure.root_cas[i]', () => {
    const good = file('root.pem', chain.root.pem);
    const refused = (o: unknown, message: RegExp) =>
      assert.throws(
        () => build(o),
        (e) => isMwiError(e, 'BAD_CONFIG') && e.field === 'azure.root_cas[1]' && message.test(e.message),
      );
    refused({ root_cas: [good, join(tmp.path, 'nope.pem')] }, /cannot read .*nope\.pem: no such file or directory/);
    refused({ root_cas: [good, file('empty.pem', 'hello\n')] }, /holds no PEM certificate/);
    const broken = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
    refused({ root_cas: [good, file('broken.pem', broken)] }, /does not parse/);
  });

  it('mwi.yaml: the section is read with the rest, and a bad value names its field', () => {
    const root = file('r.pem', chain.root.pem);
    const cfg = loadAuthConfig(mwiYaml(`azure:\n  root_cas: [${root}]\n  signer_names: [metadata.azure.com]\n`), {});
    assert.deepEqual(cfg.joinMethods.azure, { root_cas: [root], signer_names: ['metadata.azure.com'] });
    for (const [body, message] of [
      ['azure:\n  root_cas: []\n', 'azure.root_cas: at least one file (leave the key out for the built-in roots)'],
      [
        'azure:\n  signer_names: ["*.azure.com"]\n',
        'azure.signer_names[0]: expected a DNS name, like metadata.azure.com',
      ],
      ['azure:\n  roots: [x]\n', 'azure.roots: unknown key (expected one of the documented keys)'],
    ] as const) {
      const f = mwiYaml(body);
      assert.throws(
        () => loadAuthConfig(f, {}),
        (e) => isMwiError(e, 'BAD_CONFIG') && e.message === `${f}: ${message}`,
        body,
      );
    }
  });
});
