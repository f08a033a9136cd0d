import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, randomBytes, sign, webcrypto, X509Certificate, type KeyObject } from 'node:crypto';
import { isIPv4 } from 'node:net';
import { ipv6Groups } from '../util/ip.js';
import { certSubjectDer, encodeOid, findExtensionValue, readTlv, seq, time, tlv, uint } from './der.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** Private OID of the extension holding mwi's identity claims (JSON in a UTF8String). */
export const IDENTITY_OID = '1.3.9999.7.1';

/** Clock skew allowance: NotBefore is backdated by this much (DESIGN.md section 4). */
export const BACKDATE_MS = 60_000;

/**
 * A CA loaded once at startup: the parsed certificate, its signing key, and the DER pieces every
 * leaf repeats (issuer name, key identifier), so issuing a certificate parses nothing.
 */
export interface LoadedCA {
  certPem: string;
  cert: X509Certificate;
  key: KeyObject;
  subjectDer: Uint8Array;
  keyId: Uint8Array;
}

/** Stored form of a CA: PEMs only. */
export interface CAKeyPair {
  certPem: string;
  keyPem: string;
}

/** Creates a self-signed ECDSA P-256 CA valid for ten years (once per cluster, not hot). */
export async function createCA(commonName: string, organization: string): Promise<CAKeyPair> {
  const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(16)
      .toString('hex')
      .replace(/^[89a-f]/, '1'),
    name: [{ CN: [commonName] }, { O: [organization] }],
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + 10 * 365 * 24 * 3600 * 1000),
    keys,
    signingAlgorithm: SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({
    type: 'pkcs8',
    format: 'pem',
  });
  return { certPem: pemLine(cert.toString('pem')), keyPem: keyPem.toString() };
}

/** Imports a stored CA for signing. Done once per process, never per request. */
export async function loadCA(pair: CAKeyPair): Promise<LoadedCA> {
  const cert = new X509Certificate(pair.certPem);
  const ski = findExtensionValue(cert.raw, '2.5.29.14');
  const inner = ski ? readTlv(ski, 0) : undefined;
  if (!ski || inner?.tag !== 0x04) throw new TypeError('CA certificate has no SubjectKeyIdentifier');
  return {
    certPem: pair.certPem,
    cert,
    key: createPrivateKey(pair.keyPem),
    subjectDer: certSubjectDer(cert.raw),
    keyId: ski.subarray(inner.start, inner.end),
  };
}

export interface IssueOptions {
  ca: LoadedCA;
  /** Subject public key (the holder generated it): SubjectPublicKeyInfo DER. */
  publicKey: Buffer;
  commonName: string;
  organization?: string[];
  ttlMs: number;
  usage: 'client' | 'server' | 'client+server';
  dnsNames?: string[];
  ipAddresses?: string[];
  uris?: string[];
  /** mwi identity claims, embedded under IDENTITY_OID. */
  identity?: object;
  now?: number;
}

const OID = {
  ecdsaSha256: encodeOid('1.2.840.10045.4.3.2'),
  cn: encodeOid('2.5.4.3'),
  o: encodeOid('2.5.4.10'),
  basicConstraints: encodeOid('2.5.29.19'),
  keyUsage: encodeOid('2.5.29.15'),
  extKeyUsage: encodeOid('2.5.29.37'),
  aki: encodeOid('2.5.29.35'),
  san: encodeOid('2.5.29.17'),
  serverAuth: encodeOid('1.3.6.1.5.5.7.3.1'),
  clientAuth: encodeOid('1.3.6.1.5.5.7.3.2'),
  identity: encodeOid(IDENTITY_OID),
};
const SIG_ALG = seq(OID.ecdsaSha256);
const VERSION_3 = tlv(0xa0, tlv(0x02, Buffer.from([2])));
const CRITICAL = tlv(0x01, Buffer.from([0xff]));

function ext(oid: Buffer, value: Uint8Array, critical = false): Buffer {
  return seq(oid, ...(critical ? [CRITICAL] : []), tlv(0x04, value));
}

// KeyUsage BIT STRINGs: digitalSignature (bit 0), and keyEncipherment (bit 2) for RSA only
const KU_SIGN = tlv(0x03, Buffer.from([7, 0x80]));
const KU_SIGN_ENCIPHER = tlv(0x03, Buffer.from([5, 0xa0]));
const RSA_ALG = seq(encodeOid('1.2.840.113549.1.1.1'), tlv(0x05, Buffer.alloc(0)));

/**
 * KeyUsage for a leaf's key. An EC or Ed25519 key cannot encipher a key, so it gets
 * digitalSignature only (RFC 5480 section 3, RFC 8410 section 5); keyEncipherment is for RSA
 * key transport alone.
 */
function keyUsageFor(spki: Buffer): Buffer {
  const outer = readTlv(spki, 0);
  const alg = outer ? readTlv(spki, outer.start) : undefined;
  const isRsa = alg !== undefined && spki.subarray(outer!.start, alg.end).equals(RSA_ALG);
  return isRsa ? KU_SIGN_ENCIPHER : KU_SIGN;
}

/** The 4 or 16 bytes of an IP address (an IPv6 address may end in dotted IPv4, as in ::ffff:1.2.3.4). */
function ipBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  // a zone id names a link of this host, not an address a certificate can certify
  const groups = ip.includes('%') ? undefined : ipv6Groups(ip);
  if (!groups) throw new TypeError(`not an IP address: ${ip}`);
  return Buffer.from(groups.flatMap((g) => [g >> 8, g & 0xff]));
}

/**
 * Issues a leaf certificate for a holder's public key: the TBSCertificate is assembled as DER
 * here and signed with node:crypto on the libuv thread pool. This is the join/renew hot path.
 * Returns the PEM, its NotAfter and its serial (lowercase hex, as `openssl x509 -serial` prints
 * it) for the audit event. KeyUsage is digitalSignature, plus keyEncipherment for RSA keys only.
 */
export async function issueCertificate(
  opts: IssueOptions,
): Promise<{ certPem: string; notAfter: Date; serial: string }> {
  const now = opts.now ?? Date.now();
  const notAfter = new Date(now + opts.ttlMs);
  const rdn = (oid: Buffer, v: string) => tlv(0x31, seq(oid, tlv(0x0c, Buffer.from(v))));
  const subject = seq(rdn(OID.cn, opts.commonName), ...(opts.organization ?? []).map((o) => rdn(OID.o, o)));
  const eku =
    opts.usage === 'client'
      ? [OID.clientAuth]
      : opts.usage === 'server'
        ? [OID.serverAuth]
        : [OID.serverAuth, OID.clientAuth];
  const names = [
    ...(opts.dnsNames ?? []).map((d) => tlv(0x82, Buffer.from(d))),
    ...(opts.ipAddresses ?? []).map((ip) => tlv(0x87, ipBytes(ip))),
    ...(opts.uris ?? []).map((u) => tlv(0x86, Buffer.from(u))),
  ];
  const extensions = [
    ext(OID.basicConstraints, seq(), true),
    ext(OID.keyUsage, keyUsageFor(opts.publicKey), true),
    ext(OID.extKeyUsage, seq(...eku)),
    ext(OID.aki, seq(tlv(0x80, opts.ca.keyId))),
    ...(names.length > 0 ? [ext(OID.san, seq(...names))] : []),
    ...(opts.identity ? [ext(OID.identity, tlv(0x0c, Buffer.from(JSON.stringify(opts.identity))))] : []),
  ];
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f;
  const tbs = seq(
    VERSION_3,
    uint(serial),
    SIG_ALG,
    opts.ca.subjectDer,
    seq(time(new Date(now - BACKDATE_MS)), time(notAfter)),
    subject,
    opts.publicKey,
    tlv(0xa3, seq(...extensions)),
  );
  const sig = await new Promise<Buffer>((resolve, reject) =>
    sign('sha256', tbs, opts.ca.key, (err, out) => (err ? reject(err) : resolve(out))),
  );
  const der = seq(tbs, SIG_ALG, tlv(0x03, Buffer.concat([Buffer.from([0]), sig])));
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n');
  return {
    certPem: `-----BEGIN CERTIFICATE-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END CERTIFICATE-----\n`,
    notAfter,
    // the integer's magnitude bytes, as `openssl x509 -serial` prints them (in lowercase)
    serial: serial.subarray(Math.min(serial.findIndex((b) => b !== 0) >>> 0, 15)).toString('hex'),
  };
}

function pemLine(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}
