import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import * as asn1js from 'asn1js';
import { createHash, webcrypto, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as pkijs from 'pkijs';
import { ec2Section, ec2Server } from '../../src/join/ec2/server.js';
import type { JoinHandler, ServerDeps } from '../../src/join/types.js';

/**
 * Signs EC2 instance identity documents the way AWS does (the `rsa2048` form: CMS SignedData,
 * BER with indefinite lengths, the JSON attached as a constructed OCTET STRING, signed attributes
 * content-type, signing-time and message-digest, SHA-256 with RSA-2048) with test certificates, so
 * the Auth Service's real verification runs against documents of the real shape.
 */

x509.cryptoProvider.set(webcrypto as unknown as Crypto);
const RSA = {
  name: 'RSASSA-PKCS1-v1_5',
  hash: 'SHA-256',
  publicExponent: new Uint8Array([1, 0, 1]),
  modulusLength: 2048,
};

/** A test stand-in for AWS's certificate of one region: RSA-2048, self-signed. */
export interface TestRegionCa {
  cert: X509Certificate;
  pem: string;
  key: CryptoKey;
}

export async function testRegionCa(name = 'Test AWS Region'): Promise<TestRegionCa> {
  const keys = await webcrypto.subtle.generateKey(RSA, true, ['sign', 'verify']);
  const c = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(8)))
      .toString('hex')
      .replace(/^./, '4'),
    name: `C=US, ST=Washington State, L=Seattle, O=${name}`,
    notBefore: new Date(Date.now() - 86_400_000),
    notAfter: new Date(Date.now() + 10 * 365 * 86_400_000),
    signingAlgorithm: RSA,
    keys,
  });
  const pem = c.toString('pem');
  return { cert: new X509Certificate(pem), pem, key: keys.privateKey };
}

/** The identity document's JSON, in AWS's key order and spacing. */
export function iidJson(fields: Record<string, unknown>): string {
  const doc = {
    accountId: '123456789012',
    architecture: 'x86_64',
    availabilityZone: 'us-west-2b',
    billingProducts: null,
    devpayProductCodes: null,
    marketplaceProductCodes: null,
    imageId: 'ami-0123456789abcdef0',
    instanceId: 'i-0123456789abcdef0',
    instanceType: 't3.micro',
    kernelId: null,
    pendingTime: new Date(Date.now() - 60_000).toISOString().replace(/\.\d+Z$/, 'Z'),
    privateIp: '10.0.1.10',
    ramdiskId: null,
    region: 'us-west-2',
    version: '2017-09-30',
    ...fields,
  };
  return JSON.stringify(doc, null, 2).replace(/": /g, '" : ');
}

/** What to change in a signed document (the hostile corpus's knobs). */
export interface SignIidOptions {
  /** Certificates to carry in the document (AWS's carry none). */
  carry?: X509Certificate[];
  /** Unsigned attributes of the signer (anything in them is outside the signature). */
  unsigned?: Record<string, string>;
  /** Leave out a signed attribute. */
  omit?: 'content-type' | 'message-digest';
  /** The signer named in the document, if not the key's own certificate. */
  signerCert?: X509Certificate;
  /** DER instead of AWS's BER. */
  der?: boolean;
}

const ATTR = {
  contentType: '1.2.840.113549.1.9.3',
  signingTime: '1.2.840.113549.1.9.5',
  digest: '1.2.840.113549.1.9.4',
};
const DATA = '1.2.840.113549.1.7.1';

/** AWS's BER shape: indefinite lengths down to the content, the content a constructed OCTET STRING. */
function awsBer(der: ArrayBuffer): Buffer {
  const root = asn1js.fromBER(der).result as asn1js.Sequence;
  const indefinite = (n: asn1js.BaseBlock) => {
    n.lenBlock.isIndefiniteForm = true;
    (n.valueBlock as unknown as { isIndefiniteForm: boolean }).isIndefiniteForm = true;
  };
  const kids = (n: asn1js.BaseBlock) => (n.valueBlock as unknown as { value: asn1js.BaseBlock[] }).value;
  indefinite(root);
  const explicit = kids(root)[1]!;
  indefinite(explicit);
  const signedData = kids(explicit)[0]!;
  indefinite(signedData);
  const encap = kids(signedData).find(
    (k) => k instanceof asn1js.Sequence && kids(k)[0] instanceof asn1js.ObjectIdentifier,
  )!;
  indefinite(encap);
  const wrap = kids(encap)[1]!;
  indefinite(wrap);
  const octets = kids(wrap)[0] as asn1js.OctetString;
  kids(wrap)[0] = new asn1js.OctetString({
    isConstructed: true,
    isIndefiniteForm: true,
    lenBlock: { isIndefiniteForm: true },
    value: [new asn1js.OctetString({ valueHex: new Uint8Array(octets.getValue()) })],
  });
  return Buffer.from(root.toBER(false));
}

/** A signed document (base64 in 64-character lines, as IMDS serves it) with `ca`'s key. */
export async function signIid(content: string | Buffer, ca: TestRegionCa, o: SignIidOptions = {}): Promise<string> {
  const bytes = Buffer.from(content);
  const named = pkijs.Certificate.fromBER(new Uint8Array((o.signerCert ?? ca.cert).raw));
  const attrs = [
    ...(o.omit === 'content-type'
      ? []
      : [new pkijs.Attribute({ type: ATTR.contentType, values: [new asn1js.ObjectIdentifier({ value: DATA })] })]),
    new pkijs.Attribute({ type: ATTR.signingTime, values: [new asn1js.UTCTime({ valueDate: new Date() })] }),
    ...(o.omit === 'message-digest'
      ? []
      : [
          new pkijs.Attribute({
            type: ATTR.digest,
            values: [new asn1js.OctetString({ valueHex: createHash('sha256').update(bytes).digest() })],
          }),
        ]),
  ];
  const sd = new pkijs.SignedData({
    version: 1,
    encapContentInfo: new pkijs.EncapsulatedContentInfo({
      eContentType: DATA,
      eContent: new asn1js.OctetString({ valueHex: bytes }),
    }),
    signerInfos: [
      new pkijs.SignerInfo({
        version: 1,
        sid: new pkijs.IssuerAndSerialNumber({ issuer: named.issuer, serialNumber: named.serialNumber }),
        signedAttrs: new pkijs.SignedAndUnsignedAttributes({ type: 0, attributes: attrs }),
        ...(o.unsigned
          ? {
              unsignedAttrs: new pkijs.SignedAndUnsignedAttributes({
                type: 1,
                attributes: Object.entries(o.unsigned).map(
                  ([oid, text]) => new pkijs.Attribute({ type: oid, values: [new asn1js.Utf8String({ value: text })] }),
                ),
              }),
            }
          : {}),
      }),
    ],
    ...(o.carry ? { certificates: o.carry.map((c) => pkijs.Certificate.fromBER(new Uint8Array(c.raw))) } : {}),
  });
  await sd.sign(ca.key, 0, 'SHA-256');
  const info = new pkijs.ContentInfo({ contentType: '1.2.840.113549.1.7.2', content: sd.toSchema(true) });
  const der = info.toSchema().toBER(false);
  const out = o.der ? Buffer.from(der) : awsBer(der);
  return out.toString('base64').replace(/(.{64})/g, '$1\n');
}

/** The same document signed with DSA, as AWS's /pkcs7 form is: only its algorithm matters (refused unread). */
export async function dsaIid(content: string, ca: TestRegionCa): Promise<string> {
  const b64 = await signIid(content, ca, { der: true });
  const info = pkijs.ContentInfo.fromBER(new Uint8Array(Buffer.from(b64.replace(/\n/g, ''), 'base64')));
  const sd = new pkijs.SignedData({ schema: info.content });
  sd.signerInfos[0]!.signatureAlgorithm = new pkijs.AlgorithmIdentifier({ algorithmId: '1.2.840.10040.4.3' });
  const out = new pkijs.ContentInfo({ contentType: '1.2.840.113549.1.7.2', content: sd.toSchema(true) });
  return Buffer.from(out.toSchema().toBER(false)).toString('base64');
}

/** A real rsa2048 document AWS signed (ap-southeast-2, 2026-02-16), from a public test suite. */
export const REAL_AWS_DOCUMENT = [
  'MIAGCSqGSIb3DQEHAqCAMIACAQExDTALBglghkgBZQMEAgEwgAYJKoZIhvcNAQcBoIAkgASCAeR7',
  'CiAgImFjY291bnRJZCIgOiAiMTg5MjkyNzkxMzYwIiwKICAiYXJjaGl0ZWN0dXJlIiA6ICJhcm02',
  'NCIsCiAgImF2YWlsYWJpbGl0eVpvbmUiIDogImFwLXNvdXRoZWFzdC0yYSIsCiAgImJpbGxpbmdQ',
  'cm9kdWN0cyIgOiBudWxsLAogICJkZXZwYXlQcm9kdWN0Q29kZXMiIDogbnVsbCwKICAibWFya2V0',
  'cGxhY2VQcm9kdWN0Q29kZXMiIDogbnVsbCwKICAiaW1hZ2VJZCIgOiAiYW1pLTBjYmRlNzQ0NjIz',
  'Yjc1MDZiIiwKICAiaW5zdGFuY2VJZCIgOiAiaS0wYzU1NDE5MzZjYWY3OGMxMiIsCiAgImluc3Rh',
  'bmNlVHlwZSIgOiAidDRnLnNtYWxsIiwKICAia2VybmVsSWQiIDogbnVsbCwKICAicGVuZGluZ1Rp',
  'bWUiIDogIjIwMjYtMDItMTZUMDA6Mzg6MjdaIiwKICAicHJpdmF0ZUlwIiA6ICIxMC4wLjEuMjQy',
  'IiwKICAicmFtZGlza0lkIiA6IG51bGwsCiAgInJlZ2lvbiIgOiAiYXAtc291dGhlYXN0LTIiLAog',
  'ICJ2ZXJzaW9uIiA6ICIyMDE3LTA5LTMwIgp9AAAAAAAAMYICKzCCAicCAQEwaTBcMQswCQYDVQQG',
  'EwJVUzEZMBcGA1UECBMQV2FzaGluZ3RvbiBTdGF0ZTEQMA4GA1UEBxMHU2VhdHRsZTEgMB4GA1UE',
  'ChMXQW1hem9uIFdlYiBTZXJ2aWNlcyBMTEMCCQC9mzoG/navazALBglghkgBZQMEAgGggZYwGAYJ',
  'KoZIhvcNAQkDMQsGCSqGSIb3DQEHATAcBgkqhkiG9w0BCQUxDxcNMjYwMjE2MDAzODI4WjArBgkq',
  'hkiG9w0BCTQxHjAcMAsGCWCGSAFlAwQCAaENBgkqhkiG9w0BAQsFADAvBgkqhkiG9w0BCQQxIgQg',
  'JuBakWdgxV8tjlul+DIT6i+w6b8/C55oWPvN4ZjsikQwDQYJKoZIhvcNAQELBQAEggEAKb9EHZze',
  'cWagTKFctn6wj09JvLDpRx9nxBqT62WIh8lXYERWxCuL9Q6PcTnyaVgydldyZ+R2LSdb6+J7341l',
  'LmKJpwwQCX/YuSlYWEKaQkliG6LSEFBg3sTmQeM4LhZAAiAlZ3U2OekfVqvCuzNRFcqfKbTPzUJU',
  'q07M76Si2G8JcJW8OBYmzNsJYbeDVnhp3L6uet6zHWzlSA1U0Q3MNs8gmt9HWGzW9sDOaj5ZOkK7',
  'WzMXqkdbCuFkesa6EaV2nRtD+Xm2LipxGbOwlmBPumg0WGcgDuPUc62A5DewgctliURC6qzhTLnS',
  'AKOTPvMq3Nro7tmuvFahEjsAdcWoBQAAAAAAAA==',
].join('\n');

/** The ec2 server half with mwi.yaml `ec2.region_certificates` for these regions (PEMs written to `dir`). */
export function ec2Handler(dir: string, regions: Record<string, TestRegionCa> = {}): JoinHandler {
  const files = Object.fromEntries(
    Object.entries(regions).map(([region, ca]) => {
      const path = join(dir, `${region}.pem`);
      writeFileSync(path, ca.pem);
      return [region, path];
    }),
  );
  const deps = {} as ServerDeps;
  const config = ec2Section.build(ec2Section.schema.parse({ region_certificates: files }), deps);
  return ec2Server.create(deps, (() => config) as never);
}
