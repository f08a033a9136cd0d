import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import assert from 'node:assert/strict';
import { webcrypto, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import * as pkijs from 'pkijs';
import { SignedDataError, verifySignedData, type SignedDataProblem } from '../../src/crypto/pkcs7.js';
import { AWS_RSA2048_CERTIFICATES } from '../../src/join/ec2/certs.js';
import { dsaIid, iidJson, REAL_AWS_DOCUMENT, signIid, testRegionCa, type TestRegionCa } from '../helpers/aws-iid.js';
import { foreignKey, makeChain, signDocument, type Chain, type SignOptions } from '../helpers/azure.js';
import { run, tempDir } from '../helpers/procs.js';

const pem = (body: string) => `-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`;
const awsCert = (region: string) => new X509Certificate(pem(AWS_RSA2048_CERTIFICATES[region]!));
const bytes = (b64: string) => Buffer.from(b64.replace(/\n/g, ''), 'base64');

/** The verification refuses with `problem`, its message matching `message`. */
async function refused(p: Promise<unknown>, problem: SignedDataProblem, message: RegExp) {
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof SignedDataError, String(e));
    assert.equal(e.problem, problem, e.message);
    assert.match(e.message, message);
    return true;
  });
}

describe("AWS's RSA-2048 region certificates (embedded public data)", () => {
  it('every one parses, is RSA-2048, is self-signed by AWS, and is valid now and long after', () => {
    assert.equal(Object.keys(AWS_RSA2048_CERTIFICATES).length, 33);
    for (const region of Object.keys(AWS_RSA2048_CERTIFICATES)) {
      const c = awsCert(region);
      assert.equal(c.publicKey.asymmetricKeyDetails?.modulusLength, 2048, region);
      assert.ok(c.verify(c.publicKey), `${region}: its self-signature`);
      assert.equal(c.subject, c.issuer, region);
      assert.match(c.subject, /^C=US\nST=Washington State\nL=Seattle\nO=Amazon Web Services LLC$/, region);
      assert.ok(Date.parse(c.validFrom) < Date.now() && Date.parse(c.validTo) > Date.parse('2190-01-01'), region);
    }
  });

  it("a real document AWS signed in ap-southeast-2 verifies with that region's certificate, and only with it", async () => {
    const doc = bytes(REAL_AWS_DOCUMENT);
    const v = await verifySignedData(doc, { trust: { certificate: awsCert('ap-southeast-2') } });
    const content = JSON.parse(v.content.toString('utf8')) as Record<string, string>;
    assert.equal(content.instanceId, 'i-0c5541936caf78c12');
    assert.equal(content.region, 'ap-southeast-2');
    assert.equal(v.digest, 'SHA-256');
    assert.equal(v.signingTime?.toISOString(), '2026-02-16T00:38:28.000Z');
    await refused(
      verifySignedData(doc, { trust: { certificate: awsCert('us-east-1') } }),
      'untrusted-signer',
      /not signed by the trusted certificate/,
    );
  });
});

describe('verifySignedData: documents of the AWS shape, signed by a test CA', () => {
  let ca: TestRegionCa;
  let other: TestRegionCa;
  const content = iidJson({});
  before(async () => {
    ca = await testRegionCa();
    other = await testRegionCa('Someone Else');
  });
  const verify = (doc: Buffer | string, trust = ca.cert) =>
    verifySignedData(typeof doc === 'string' ? bytes(doc) : doc, { trust: { certificate: trust } });

  it('BER (indefinite lengths, constructed content) and DER both verify; openssl agrees on the BER one', async () => {
    const ber = await signIid(content, ca);
    assert.equal((await verify(ber)).content.toString(), content);
    assert.equal((await verify(await signIid(content, ca, { der: true }))).content.toString(), content);
    const tmp = tempDir('pkcs7');
    try {
      writeFileSync(join(tmp.path, 'doc.der'), bytes(ber));
      writeFileSync(join(tmp.path, 'ca.pem'), ca.pem);
      const r = await run('openssl', [
        'cms',
        '-verify',
        '-inform',
        'DER',
        '-in',
        join(tmp.path, 'doc.der'),
        '-certfile',
        join(tmp.path, 'ca.pem'),
        '-noverify',
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, content);
    } finally {
      tmp.cleanup();
    }
  });

  it('changed content, another key, another named signer: refused', async () => {
    const ber = bytes(await signIid(content, ca));
    const at = ber.indexOf(Buffer.from('123456789012'));
    const tampered = Buffer.from(ber);
    tampered[at] = '9'.charCodeAt(0);
    await refused(verify(tampered), 'bad-signature', /does not match the signed message digest/);
    // signed by another key, naming the pinned certificate as its signer
    await refused(
      verify(await signIid(content, other, { signerCert: ca.cert })),
      'bad-signature',
      /not verified|does not verify/,
    );
    await refused(verify(await signIid(content, other)), 'untrusted-signer', /not signed by the trusted certificate/);
  });

  it("a document's own certificates are ignored: one naming itself like the pinned signer changes nothing", async () => {
    // the attacker's certificate carries the pinned one's issuer and serial number
    const keys = await webcrypto.subtle.generateKey(
      { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 },
      true,
      ['sign', 'verify'],
    );
    const fake = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: ca.cert.serialNumber.toLowerCase(),
      name: ca.cert.subject.split('\n').join(', '),
      signingAlgorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      keys,
    });
    const fakePem = fake.toString('pem');
    const forger = { cert: new X509Certificate(fakePem), pem: fakePem, key: keys.privateKey };
    const doc = await signIid(content, forger, { carry: [forger.cert] });
    await refused(verify(doc), 'bad-signature', /not verified|does not verify/);
  });

  it('signed attributes: without content-type or message-digest, refused', async () => {
    await refused(
      verify(await signIid(content, ca, { omit: 'content-type' })),
      'malformed',
      /content-type signed attribute/,
    );
    await refused(
      verify(await signIid(content, ca, { omit: 'message-digest' })),
      'malformed',
      /message-digest signed attribute/,
    );
  });

  it('DSA (the /pkcs7 form) is named as such; truncated, padded, oversized or foreign input is malformed', async () => {
    await refused(verify(await dsaIid(content, ca)), 'dsa', /signed with DSA/);
    const ber = bytes(await signIid(content, ca));
    await refused(verify(ber.subarray(0, ber.length - 40)), 'malformed', /not BER|bytes after|not a/);
    await refused(verify(Buffer.concat([ber, Buffer.from([0])])), 'malformed', /1 bytes after the document/);
    await refused(verify(Buffer.alloc(70_000, 0x30)), 'malformed', /70000 bytes \(expected 1 to 65536\)/);
    await refused(verify(Buffer.alloc(0)), 'malformed', /0 bytes/);
    await refused(verify(Buffer.from(ca.cert.raw)), 'malformed', /not a CMS ContentInfo|not SignedData/);
    await refused(verify(Buffer.from('not asn.1 at all')), 'malformed', /not BER|not a CMS/);
  });
});

describe('verifySignedData with trust anchors: a signer that chains to a pinned root (the azure shape)', () => {
  const RSA = {
    name: 'RSASSA-PKCS1-v1_5',
    hash: 'SHA-256',
    publicExponent: new Uint8Array([1, 0, 1]),
    modulusLength: 2048,
  };
  async function chain() {
    const gen = async () => await webcrypto.subtle.generateKey(RSA, true, ['sign', 'verify']);
    const [rk, ik, lk] = [await gen(), await gen(), await gen()];
    const ca = [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
    ];
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=Test Root',
      keys: rk,
      signingAlgorithm: RSA,
      extensions: ca,
    });
    const inter = await x509.X509CertificateGenerator.create({
      serialNumber: '02',
      subject: 'CN=Test Intermediate',
      issuer: root.subject,
      publicKey: ik.publicKey,
      signingKey: rk.privateKey,
      signingAlgorithm: RSA,
      extensions: ca,
    });
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: '03',
      subject: 'CN=metadata.test',
      issuer: inter.subject,
      publicKey: lk.publicKey,
      signingKey: ik.privateKey,
      signingAlgorithm: RSA,
    });
    const node = (c: x509.X509Certificate) => new X509Certificate(c.toString('pem'));
    return {
      root: node(root),
      inter: node(inter),
      leaf: { cert: node(leaf), pem: leaf.toString('pem'), key: lk.privateKey },
    };
  }

  it('verifies through an intermediate the document carries or the caller gives; another root is refused', async () => {
    const c = await chain();
    const other = await chain();
    const carried = bytes(await signIid('{"nonce":"n1"}', c.leaf, { carry: [c.leaf.cert, c.inter] }));
    const v = await verifySignedData(carried, { trust: { roots: [c.root] } });
    assert.equal(v.signer.subject, 'CN=metadata.test');
    assert.equal(v.content.toString(), '{"nonce":"n1"}');
    const bare = bytes(await signIid('{"nonce":"n2"}', c.leaf, { carry: [c.leaf.cert] }));
    await verifySignedData(bare, { trust: { roots: [c.root], intermediates: [c.inter] } });
    await refused(verifySignedData(carried, { trust: { roots: [other.root] } }), 'untrusted-signer', /does not chain/);
    await refused(verifySignedData(bare, { trust: { roots: [c.root] } }), 'untrusted-signer', /does not chain/);
  });
});

describe("verifySignedData for a signer the caller judges: Azure's shape (its digest field quirk, no signed attributes)", () => {
  let azure: Chain;
  before(async () => {
    azure = await makeChain();
  });
  const der = async (o: SignOptions = {}) =>
    Buffer.from(await signDocument('{"nonce":"n"}', azure.signer, o), 'base64');
  const carried = { trust: { signerCheckedByCaller: true as const } };

  it('returns the certificate the document carries for its signer, and only a signature by its key', async () => {
    const v = await verifySignedData(await der(), carried);
    assert.ok(v.signer.raw.equals(azure.signer.der));
    assert.equal(v.content.toString(), '{"nonce":"n"}');
    await refused(
      verifySignedData(await der({ key: await foreignKey() }), carried),
      'bad-signature',
      /does not verify/,
    );
    // a document that carries no certificate names no signer to judge
    const sd = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(new Uint8Array(await der())).content });
    sd.certificates = [];
    const bare = new pkijs.ContentInfo({ contentType: pkijs.ContentInfo.SIGNED_DATA, content: sd.toSchema(true) });
    await refused(
      verifySignedData(Buffer.from(bare.toSchema().toBER(false)), carried),
      'untrusted-signer',
      /does not carry its signer's certificate/,
    );
  });

  it('a signature algorithm written in the digest field stands for its hash; the content must still match', async () => {
    // signDocument writes sha256WithRSAEncryption where the digest algorithm belongs (quirk: true by default)
    assert.equal((await verifySignedData(await der(), carried)).digest, 'SHA-256');
    assert.equal((await verifySignedData(await der({ rsaEncryption: true }), carried)).digest, 'SHA-256');
    const pinned = { trust: { certificate: new X509Certificate(azure.signer.der) } };
    assert.equal((await verifySignedData(await der(), pinned)).content.toString(), '{"nonce":"n"}');
    const tampered = await der();
    tampered[tampered.indexOf(Buffer.from('"n"')) + 1] = 'm'.charCodeAt(0);
    await refused(verifySignedData(tampered, carried), 'bad-signature', /signature does not verify: the content/);
  });

  it('id-data signed without signed attributes: verified over the content itself where the caller allows it', async () => {
    const bare = await der({ signedAttrs: false });
    await refused(verifySignedData(bare, carried), 'malformed', /no signed attributes/);
    const allowed = { ...carried, signedAttributesOptional: true };
    const v = await verifySignedData(bare, allowed);
    assert.equal(v.content.toString(), '{"nonce":"n"}');
    assert.equal(v.signingTime, undefined);
    await refused(
      verifySignedData(await der({ signedAttrs: false, key: await foreignKey() }), allowed),
      'bad-signature',
      /does not verify/,
    );
  });
});
