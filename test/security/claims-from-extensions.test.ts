import assert from 'node:assert/strict';
import { sign, X509Certificate } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { claimsFromCert } from '../../src/auth/claims.js';
import { encodeOid, findExtensionValue, seq, time, tlv, uint } from '../../src/crypto/der.js';
import { createCA, IDENTITY_OID, issueCertificate, loadCA, type LoadedCA } from '../../src/crypto/x509.js';
import { generateKeyPairSync } from 'node:crypto';

const FAKE = { kind: 'admin', user: 'root' };
const REAL = { kind: 'output', bot: 'robot', instance: 'i-1' };
/** The bytes a byte search for the identity OID would take for the extension: OID, OCTET STRING, UTF8String. */
const smuggled = Buffer.concat([encodeOid(IDENTITY_OID), tlv(0x04, tlv(0x0c, Buffer.from(JSON.stringify(FAKE))))]);
const identityExt = (claims: object) =>
  seq(encodeOid(IDENTITY_OID), tlv(0x04, tlv(0x0c, Buffer.from(JSON.stringify(claims)))));

/** A certificate signed by `ca` with the given subject and extensions, assembled as DER. */
function certificate(ca: LoadedCA, subject: Buffer, extensions: Buffer[]): Buffer {
  const alg = seq(encodeOid('1.2.840.10045.4.3.2'));
  const spki = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({
    type: 'spki',
    format: 'der',
  });
  const now = Date.now();
  const tbs = seq(
    tlv(0xa0, tlv(0x02, Buffer.from([2]))),
    uint(Buffer.from([1, 2, 3])),
    alg,
    Buffer.from(ca.subjectDer),
    seq(time(new Date(now - 60_000)), time(new Date(now + 60_000))),
    subject,
    spki,
    ...(extensions.length > 0 ? [tlv(0xa3, seq(...extensions))] : []),
  );
  return seq(tbs, alg, tlv(0x03, Buffer.concat([Buffer.from([0]), sign('sha256', tbs, ca.key)])));
}

// TeletexString (0x14) carries any bytes; OpenSSL refuses a UTF8String that is not UTF-8
const cn = (value: Buffer) => seq(tlv(0x31, seq(encodeOid('2.5.4.3'), tlv(0x14, value))));
/** subjectAltName with an otherName whose value holds `value`. */
const sanOtherName = (value: Buffer) =>
  seq(
    encodeOid('2.5.29.17'),
    tlv(0x04, seq(tlv(0xa0, Buffer.concat([encodeOid('1.3.6.1.4.1.99999.1'), tlv(0xa0, tlv(0x04, value))])))),
  );

/**
 * Identity claims are read from the certificate's extensions, not found by searching the DER for
 * the OID's bytes: a subject or SAN that contains those bytes must not be read as the claims.
 */
describe('identity claims are parsed from the certificate extensions only', () => {
  let ca: LoadedCA;
  before(async () => {
    ca = await loadCA(await createCA('test', 'mwi user CA'));
  });

  it('a subject CN holding the OID bytes and fake claims is not read as claims (no identity extension)', () => {
    const der = certificate(ca, cn(smuggled), []);
    assert.ok(
      new X509Certificate(der).verify(ca.cert.publicKey),
      'the certificate is well formed and signed by the CA',
    );
    assert.equal(claimsFromCert(der), undefined);
  });

  it('a subject CN holding fake claims does not shadow the real identity extension', () => {
    const der = certificate(ca, cn(smuggled), [identityExt(REAL)]);
    assert.deepEqual(claimsFromCert(der), REAL);
  });

  it('a SAN (otherName) holding the OID bytes and fake claims is not read as claims', () => {
    assert.ok(
      new X509Certificate(certificate(ca, cn(Buffer.from('bot-robot')), [sanOtherName(smuggled)])).verify(
        ca.cert.publicKey,
      ),
    );
    assert.equal(claimsFromCert(certificate(ca, cn(Buffer.from('bot-robot')), [sanOtherName(smuggled)])), undefined);
    assert.deepEqual(
      claimsFromCert(certificate(ca, cn(Buffer.from('bot-robot')), [sanOtherName(smuggled), identityExt(REAL)])),
      REAL,
    );
  });

  it('an identity extension that appears twice is refused (RFC 5280 4.2: at most one instance)', () => {
    assert.equal(
      claimsFromCert(certificate(ca, cn(Buffer.from('x')), [identityExt(REAL), identityExt(FAKE)])),
      undefined,
    );
  });

  it('truncated or malformed certificates give no claims and do not throw', () => {
    const der = certificate(ca, cn(Buffer.from('x')), [identityExt(REAL)]);
    for (let n = 0; n < der.length; n += 7) assert.equal(claimsFromCert(der.subarray(0, n)), undefined, `prefix ${n}`);
    const flipped = Buffer.from(der);
    flipped[1] = 0x85; // a length of length the parser does not accept
    assert.equal(claimsFromCert(flipped), undefined);
  });

  it('certificates issued by issueCertificate still carry their claims; other extensions are found by OID', async () => {
    const pub = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({
      type: 'spki',
      format: 'der',
    });
    const { certPem } = await issueCertificate({
      ca,
      publicKey: pub,
      commonName: 'bot-robot',
      ttlMs: 60_000,
      usage: 'client',
      identity: REAL,
      dnsNames: ['a.example'],
    });
    const der = new X509Certificate(certPem).raw;
    assert.deepEqual(claimsFromCert(der), REAL);
    assert.ok(findExtensionValue(der, '2.5.29.17'));
    assert.equal(findExtensionValue(der, '2.5.29.14'), undefined);
  });
});
