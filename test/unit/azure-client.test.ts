import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { azureClient } from '../../src/join/azure/client.js';
import { Imds, IMDS_DEFAULT, IMDS_ENV, issuerUrlAllowed, issuingChain } from '../../src/join/azure/imds.js';
import { isMwiError } from '../../src/errors.js';
import type { ClientJoinContext } from '../../src/join/client-types.js';
import { startAzure, tokenClaims, type TestAzure } from '../helpers/azure.js';
import { tempDir } from '../helpers/procs.js';

describe("tbot's side of azure: IMDS and the attested document's issuing chain", () => {
  const tmp = tempDir('azure-client');
  let az: TestAzure;
  const warnings: string[] = [];
  const warn = (m: string) => void warnings.push(m);
  before(async () => {
    az = await startAzure(tmp.path);
  });
  after(async () => {
    await az?.close();
    tmp.cleanup();
  });

  it('talks to IMDS at 169.254.169.254 unless $TBOT_AZURE_IMDS_ENDPOINT says otherwise', () => {
    assert.equal(IMDS_DEFAULT, 'http://169.254.169.254/metadata');
    assert.equal(IMDS_ENV, 'TBOT_AZURE_IMDS_ENDPOINT');
  });

  it('picks the newest API version IMDS offers, and sends it with the Metadata header', async () => {
    const imds = new Imds(az.imdsUrl);
    assert.equal(await imds.apiVersion(), '2021-02-01');
    az.requests.length = 0;
    const doc = await imds.attestedDocument('0123456789abcdef0123456789abcdef');
    assert.equal(doc.encoding, 'pkcs7');
    assert.deepEqual(az.requests, [
      {
        path: '/metadata/attested/document',
        query: { 'api-version': '2021-02-01', nonce: '0123456789abcdef0123456789abcdef', format: 'json' },
      },
    ]);
  });

  it('asks for a management token for the system-assigned identity, or the user-assigned one by client id', async () => {
    const imds = new Imds(az.imdsUrl);
    assert.ok(await imds.accessToken('https://management.azure.com/', undefined));
    az.identities.set('2d1c-client', tokenClaims({ userAssigned: true }));
    az.requests.length = 0;
    assert.ok(await imds.accessToken('https://management.azure.com/', '2d1c-client'));
    assert.equal(az.requests.at(-1)!.query.client_id, '2d1c-client');
    assert.equal(az.requests.at(-1)!.query.resource, 'https://management.azure.com/');
  });

  it('an identity IMDS does not know is a configuration error naming onboarding.azure.client_id', async () => {
    await assert.rejects(
      new Imds(az.imdsUrl).accessToken('https://management.azure.com/', 'unknown-client'),
      (e) =>
        isMwiError(e, 'BAD_CONFIG') &&
        e.field === 'onboarding.azure.client_id' &&
        /HTTP 400 \(invalid_request: Identity not found\): give the VM a managed identity/.test(e.message),
    );
  });

  it('an unreachable IMDS says where tbot looked and how to point it elsewhere', async () => {
    await assert.rejects(
      new Imds('http://127.0.0.1:9/metadata').apiVersion(),
      (e) =>
        isMwiError(e, 'UNREACHABLE') && /is tbot running on an Azure VM\? TBOT_AZURE_IMDS_ENDPOINT/.test(e.message),
    );
  });

  it("follows the signer's issuer links up to the root, which it does not send", async () => {
    const doc = await new Imds(az.imdsUrl).attestedDocument('n');
    const chain = await issuingChain(doc, az.imdsUrl, warn);
    assert.deepEqual(chain, [az.chain.issuing.der]);
  });

  it("follows links only to Microsoft's PKI repository, or the IMDS override's host", () => {
    const ok = ['http://www.microsoft.com/pkiops/certs/Microsoft%20Azure%20RSA%20TLS%20Issuing%20CA%2003.crt'];
    for (const u of ok) assert.ok(issuerUrlAllowed(u, undefined), u);
    assert.ok(issuerUrlAllowed('https://www.microsoft.com/pkiops/certs/a.crt', undefined));
    assert.ok(issuerUrlAllowed('http://127.0.0.1:8080/pkiops/certs/a.crt', 'http://127.0.0.1:8080/metadata'));
    for (const u of [
      'http://127.0.0.1:8080/pkiops/certs/a.crt',
      'http://www.microsoft.com.evil.example/pkiops/certs/a.crt',
      'http://evil.example/pkiops/certs/a.crt',
      'http://www.microsoft.com/other/a.crt',
      'http://www.microsoft.com/pkiops/certs/a.crt/../../x',
      'ftp://www.microsoft.com/pkiops/certs/a.crt',
      'file:///pkiops/certs/a.crt',
      'not a url',
    ])
      assert.ok(!issuerUrlAllowed(u, undefined), u);
  });

  it('a link it may not follow ends the chain with a warning (the Auth Service then decides)', async () => {
    const doc = await new Imds(az.imdsUrl).attestedDocument('n');
    warnings.length = 0;
    assert.deepEqual(await issuingChain(doc, undefined, warn), []);
    assert.match(warnings.join('\n'), /not following the issuer link/);
  });

  it('the payload: token, then the challenge, then the document with its nonce and chain', async () => {
    const saved = process.env[IMDS_ENV];
    process.env[IMDS_ENV] = az.imdsUrl;
    const asked: unknown[] = [];
    try {
      az.requests.length = 0;
      const ctx = {
        token: 'azure-vms',
        options: { client_id: '2d1c-client' },
        challenge: async (p: unknown) => {
          asked.push(p);
          return { challenge_id: 'c1.x.y', nonce: 'fedcba9876543210fedcba9876543210' };
        },
        log: { info: () => {}, warn },
      } as unknown as ClientJoinContext;
      const payload = (await azureClient.payload(ctx)) as Record<string, any>;
      assert.deepEqual(asked, [{}]);
      assert.equal(payload.challenge_id, 'c1.x.y');
      assert.equal(payload.attested_data.encoding, 'pkcs7');
      assert.deepEqual(payload.intermediates, [az.chain.issuing.der.toString('base64')]);
      assert.equal(typeof payload.access_token, 'string');
      assert.deepEqual(
        az.requests.map((r) => r.path),
        ['/metadata/versions', '/metadata/identity/oauth2/token', '/metadata/attested/document'],
      );
      assert.equal(az.requests[2]!.query.nonce, 'fedcba9876543210fedcba9876543210');
      assert.equal(az.requests[1]!.query.client_id, '2d1c-client');
    } finally {
      if (saved === undefined) delete process.env[IMDS_ENV];
      else process.env[IMDS_ENV] = saved;
    }
  });
});
