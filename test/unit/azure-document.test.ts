import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { before, describe, it } from 'node:test';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { DEFAULT_SIGNER_NAMES, type AzureTrust } from '../../src/join/azure/config.js';
import { verifyAttestedDocument } from '../../src/join/azure/document.js';
import { commonName, signerNameAllowed, verifyChain } from '../../src/join/azure/chain.js';
import { readSignedData } from '../../src/join/azure/wire.js';
import { JoinRefusal } from '../../src/join/types.js';
import {
  documentJson,
  foreignKey,
  KeyUsage,
  makeChain,
  signDocument,
  SUBSCRIPTION,
  VM_ID,
  type Chain,
} from '../helpers/azure.js';

const NONCE = '0123456789abcdef0123456789abcdef';

describe('azure attested document: PKCS#7 signature, nonce, signer name, chain to the pinned roots', () => {
  let azure: Chain;
  let rogue: Chain;
  let trust: AzureTrust;
  let intermediates: string[];
  const verify = (signature: string, o: { nonce?: string; inter?: unknown; encoding?: string } = {}) =>
    verifyAttestedDocument(
      { encoding: o.encoding ?? 'pkcs7', signature },
      o.inter ?? intermediates,
      o.nonce ?? NONCE,
      trust,
      Date.now(),
    );
  const refused = async (p: Promise<unknown>, reason: RegExp) =>
    assert.rejects(p, (e) => e instanceof JoinRefusal && reason.test(e.detail ?? '') && /audit log/.test(e.message));
  const doc = (fields: Record<string, unknown> = {}) => documentJson({ nonce: NONCE, ...fields });

  before(async () => {
    azure = await makeChain();
    rogue = await makeChain({ rootName: 'Rogue Root' });
    trust = { roots: [new X509Certificate(azure.root.der)], signerNames: DEFAULT_SIGNER_NAMES };
    intermediates = [azure.issuing.der.toString('base64')];
  });

  it("verifies IMDS's shape (signed attributes, Azure's digest algorithm quirk) and reads the signed content", async () => {
    assert.deepEqual(await verify(await signDocument(doc(), azure.signer)), {
      vmId: VM_ID,
      subscriptionId: SUBSCRIPTION,
    });
  });

  it('verifies a signature without signed attributes, and one without the quirk', async () => {
    assert.equal((await verify(await signDocument(doc(), azure.signer, { signedAttrs: false }))).vmId, VM_ID);
    assert.equal((await verify(await signDocument(doc(), azure.signer, { quirk: false }))).vmId, VM_ID);
    // the signature algorithm written as plain rsaEncryption: the hash comes from the (mapped) digest field
    const rsa = await signDocument(doc(), azure.signer, { rsaEncryption: true });
    assert.equal((await verify(rsa)).vmId, VM_ID);
    const rsaNoAttrs = await signDocument(doc(), azure.signer, { rsaEncryption: true, signedAttrs: false });
    assert.equal((await verify(rsaNoAttrs)).vmId, VM_ID);
  });

  it('refuses a document whose nonce is not the challenge, or that has none', async () => {
    await refused(
      verify(await signDocument(doc(), azure.signer), { nonce: 'f'.repeat(32) }),
      /nonce is not the challenge/,
    );
    await refused(verify(await signDocument(doc({ nonce: '' }), azure.signer)), /has no nonce/);
    // IMDS without a nonce puts its own timestamp there: still not the challenge
    await refused(verify(await signDocument(doc({ nonce: '20251201-074200' }), azure.signer)), /not the challenge/);
    const { nonce: _n, ...rest } = JSON.parse(doc()) as Record<string, unknown>;
    await refused(verify(await signDocument(JSON.stringify(rest), azure.signer)), /has no nonce/);
  });

  it('refuses a signer whose name is not an allowed one', async () => {
    for (const name of ['metadata.evil.example', 'metadata.azure.com.evil.example', 'xmetadata.azure.com']) {
      const c = await makeChain({ name, under: azure });
      await assert.rejects(
        verify(await signDocument(doc(), c.signer)),
        (e) => e instanceof JoinRefusal && /is not an allowed name/.test(e.detail ?? ''),
        name,
      );
    }
  });

  it('accepts the sovereign clouds and names under an allowed one', async () => {
    for (const name of ['metadata.azure.us', 'metadata.azure.cn', 'eastus.metadata.azure.com']) {
      const c = await makeChain({ name, under: azure });
      assert.equal((await verify(await signDocument(doc(), c.signer))).vmId, VM_ID, name);
    }
  });

  it('refuses a signer under an allowed name more than one label deep, or with a wildcard (review L3)', async () => {
    for (const name of ['a.b.metadata.azure.com', '*.metadata.azure.com']) {
      const c = await makeChain({ name, under: azure });
      await refused(verify(await signDocument(doc(), c.signer)), /is not an allowed name/);
    }
  });

  it('refuses a signer that is a CA, or whose key usage does not allow signing (review L3)', async () => {
    const ca = await makeChain({ under: azure, leafCa: true });
    await refused(verify(await signDocument(doc(), ca.signer)), /may not sign: it is a CA certificate/);
    const certSign = await makeChain({ under: azure, leafKeyUsage: KeyUsage.keyCertSign });
    await refused(verify(await signDocument(doc(), certSign.signer)), /keyUsage does not include digitalSignature/);
    // digitalSignature (with others) is fine, as is no key usage at all (Azure's)
    const usage = KeyUsage.digitalSignature | KeyUsage.keyEncipherment;
    const signing = await makeChain({ under: azure, leafKeyUsage: usage });
    assert.equal((await verify(await signDocument(doc(), signing.signer))).vmId, VM_ID);
  });

  it('refuses a signer that chains to a root that is not pinned, or to no root', async () => {
    const sig = await signDocument(doc(), rogue.signer);
    await refused(
      verify(sig, { inter: [rogue.issuing.der.toString('base64')] }),
      /no pinned root or intermediate issued/,
    );
    // the pinned chain's intermediate does not help a rogue signer
    await refused(verify(sig), /no pinned root or intermediate issued/);
    // without the intermediate, a genuine signer does not reach the root either
    await refused(verify(await signDocument(doc(), azure.signer), { inter: [] }), /no pinned root or intermediate/);
  });

  it('uses only intermediates that are CAs: a leaf in the list is no link', async () => {
    // a signer's own certificate (not a CA) offered as an intermediate changes nothing
    const inter = [rogue.signer.der.toString('base64'), azure.issuing.der.toString('base64')];
    assert.equal((await verify(await signDocument(doc(), azure.signer), { inter })).vmId, VM_ID);
  });

  it('refuses a signer certificate that has expired', async () => {
    const old = await makeChain({ leafNotAfter: new Date(Date.now() - 60_000), under: azure });
    await refused(verify(await signDocument(doc(), old.signer)), /is not valid now/);
  });

  it('refuses tampered content and a signature by another key', async () => {
    const sig = Buffer.from(await signDocument(doc(), azure.signer), 'base64');
    const at = sig.indexOf(Buffer.from(VM_ID));
    sig[at] = sig[at] === 0x30 ? 0x31 : 0x30;
    await refused(verify(sig.toString('base64')), /signature does not verify/);
    const forged = await signDocument(doc(), azure.signer, { key: await foreignKey() });
    await refused(verify(forged), /signature does not verify/);
    const forgedNoAttrs = await signDocument(doc(), azure.signer, { key: await foreignKey(), signedAttrs: false });
    await refused(verify(forgedNoAttrs), /signature does not verify/);
  });

  it('judges the certificate that signed, not the first one carried', async () => {
    // a rogue signer carrying the genuine signer certificate first
    const sig = await signDocument(doc(), rogue.signer, { extraCerts: [azure.signer] });
    const sd = readSignedData(sig);
    sd.certificates = [...sd.certificates!].reverse();
    const info = new pkijs.ContentInfo({ contentType: pkijs.ContentInfo.SIGNED_DATA, content: sd.toSchema(true) });
    await refused(
      verify(Buffer.from(info.toSchema().toBER(false)).toString('base64')),
      /no pinned root or intermediate/,
    );
  });

  it('reads the VM only from the signed content, never from fields beside it', async () => {
    const sig = await signDocument(doc(), azure.signer);
    const attested = {
      encoding: 'pkcs7',
      signature: sig,
      vmId: 'ffffffff-0000-0000-0000-000000000000',
      subscriptionId: 'x',
    };
    const r = await verifyAttestedDocument(attested, intermediates, NONCE, trust, Date.now());
    assert.deepEqual(r, { vmId: VM_ID, subscriptionId: SUBSCRIPTION });
  });

  it('refuses malformed documents: encoding, base64, DER, truncation, size, content, two signers', async () => {
    const sig = await signDocument(doc(), azure.signer);
    await refused(verify(sig, { encoding: 'jws' }), /is not pkcs7/);
    await refused(verify('not base64!'), /not base64/);
    await refused(verify(Buffer.from('hello').toString('base64')), /not DER|ContentInfo/);
    await refused(verify(Buffer.from(sig, 'base64').subarray(0, 200).toString('base64')), /DER|ContentInfo|SignedData/);
    await refused(verify('A'.repeat(40 * 1024)), /over \d+ characters/);
    await refused(verify(await signDocument('not json', azure.signer)), /not JSON/);
    await refused(verify(await signDocument('"a string"', azure.signer)), /not an object|no nonce/);
    await refused(verify(await signDocument(doc({ vmId: 'x' }), azure.signer)), /no vmId/);
    await refused(verify(await signDocument(doc({ subscriptionId: 7 }), azure.signer)), /no subscriptionId/);
    const two = readSignedData(sig);
    two.signerInfos.push(two.signerInfos[0]!);
    const info = new pkijs.ContentInfo({ contentType: pkijs.ContentInfo.SIGNED_DATA, content: two.toSchema(true) });
    await refused(verify(Buffer.from(info.toSchema().toBER(false)).toString('base64')), /expected one signer/);
    // a signature over detached content
    const detached = readSignedData(sig);
    detached.encapContentInfo = new pkijs.EncapsulatedContentInfo({ eContentType: '1.2.840.113549.1.7.1' });
    const d = new pkijs.ContentInfo({ contentType: pkijs.ContentInfo.SIGNED_DATA, content: detached.toSchema(true) });
    await refused(verify(Buffer.from(d.toSchema().toBER(false)).toString('base64')), /no attached content/);
  });

  it('refuses more than four intermediates, or ones that are not base64 DER', async () => {
    const sig = await signDocument(doc(), azure.signer);
    await refused(verify(sig, { inter: Array(5).fill(intermediates[0]) }), /at most 4/);
    await refused(verify(sig, { inter: ['%%%'] }), /intermediates\[0\]/);
    await refused(verify(sig, { inter: 'x' }), /expected a list/);
    await refused(verify(sig, { inter: [Buffer.from('junk').toString('base64')] }), /signer/);
  });

  it('signer names: exact, or a name under an allowed one; one common name only', async () => {
    assert.ok(signerNameAllowed('metadata.azure.com', DEFAULT_SIGNER_NAMES));
    assert.ok(signerNameAllowed('East.Metadata.Azure.com', DEFAULT_SIGNER_NAMES));
    assert.ok(signerNameAllowed('metadata.microsoftazure.de', DEFAULT_SIGNER_NAMES));
    assert.ok(!signerNameAllowed('metadata.azure.com.evil.example', DEFAULT_SIGNER_NAMES));
    assert.ok(!signerNameAllowed('evilmetadata.azure.com', DEFAULT_SIGNER_NAMES));
    // one DNS label under an allowed name (Azure's *.metadata.azure.com), nothing looser
    for (const name of [
      '.metadata.azure.com',
      '*.metadata.azure.com',
      'a.b.metadata.azure.com',
      'x_y.metadata.azure.com',
      '-x.metadata.azure.com',
      'x .metadata.azure.com',
      'metadata.azure.com.',
      'é.metadata.azure.com',
      'metadata.azure.com\u0000',
    ])
      assert.ok(!signerNameAllowed(name, DEFAULT_SIGNER_NAMES), name);
    assert.equal(commonName(azure.signer.der), 'metadata.azure.com');
  });

  it('verifyChain returns the path to the pinned root', () => {
    const path = verifyChain(azure.signer.der, [azure.issuing.der], trust.roots, Date.now());
    assert.deepEqual(path, ['CN=metadata.azure.com', 'CN=Test Azure RSA TLS Issuing CA 03', 'CN=Test Azure Root G2']);
  });

  it('the quirk fix maps only the digest field: a document whose content does not match its digest stays refused', async () => {
    const sig = readSignedData(await signDocument(doc(), azure.signer));
    sig.encapContentInfo.eContent = new asn1js.OctetString({
      valueHex: new Uint8Array(Buffer.from(doc({ vmId: VM_ID.replace('0', '1') }))),
    });
    const info = new pkijs.ContentInfo({ contentType: pkijs.ContentInfo.SIGNED_DATA, content: sig.toSchema(true) });
    await refused(verify(Buffer.from(info.toSchema().toBER(false)).toString('base64')), /signature does not verify/);
  });
});
