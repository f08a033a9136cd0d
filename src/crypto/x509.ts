import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, randomBytes, webcrypto, X509Certificate, type KeyObject } from 'node:crypto';
import { tlv } from './der.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** Private OID of the extension holding mwi's identity claims (JSON in a UTF8String). */
export const IDENTITY_OID = '1.3.9999.7.1';

/** Clock skew allowance: NotBefore is backdated by this much (DESIGN.md section 4). */
export const BACKDATE_MS = 60_000;

/** A CA loaded once at startup: parsed certificate and an imported signing key, reused per request. */
export interface LoadedCA {
  certPem: string;
  cert: X509Certificate;
  signingKey: CryptoKey;
  /** The CA certificate as @peculiar/x509 sees it, for AuthorityKeyIdentifier. */
  peculiar: x509.X509Certificate;
}

/** Stored form of a CA: PEMs only. */
export interface CAKeyPair {
  certPem: string;
  keyPem: string;
}

/** Creates a self-signed ECDSA P-256 CA valid for ten years. */
export async function createCA(commonName: string, organization: string): Promise<CAKeyPair> {
  const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(16).toString('hex').replace(/^[89a-f]/, '1'),
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
  const keyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' });
  return { certPem: pemLine(cert.toString('pem')), keyPem: keyPem.toString() };
}

/** Imports a stored CA for signing. Done once per process, never per request. */
export async function loadCA(pair: CAKeyPair): Promise<LoadedCA> {
  const der = createPrivateKey(pair.keyPem).export({ type: 'pkcs8', format: 'der' });
  const signingKey = await webcrypto.subtle.importKey('pkcs8', der, EC, false, ['sign']);
  return {
    certPem: pair.certPem,
    cert: new X509Certificate(pair.certPem),
    signingKey,
    peculiar: new x509.X509Certificate(pair.certPem),
  };
}

export interface IssueOptions {
  ca: LoadedCA;
  /** Subject public key (the holder generated it). */
  publicKey: KeyObject;
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

const spkiCache = new WeakMap<KeyObject, CryptoKey>();

async function toCryptoKey(key: KeyObject): Promise<CryptoKey> {
  let ck = spkiCache.get(key);
  if (!ck) {
    const spki = key.export({ type: 'spki', format: 'der' });
    const alg = key.asymmetricKeyType === 'ed25519' ? { name: 'Ed25519' } : EC;
    ck = await webcrypto.subtle.importKey('spki', spki, alg, true, ['verify']);
    spkiCache.set(key, ck);
  }
  return ck;
}

/** Issues a leaf certificate for a holder's public key. Returns PEM. */
export async function issueCertificate(opts: IssueOptions): Promise<{ certPem: string; notAfter: Date }> {
  const now = opts.now ?? Date.now();
  const notAfter = new Date(now + opts.ttlMs);
  const eku =
    opts.usage === 'client'
      ? [x509.ExtendedKeyUsage.clientAuth]
      : opts.usage === 'server'
        ? [x509.ExtendedKeyUsage.serverAuth]
        : [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth];
  const publicKey = await toCryptoKey(opts.publicKey);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
    new x509.ExtendedKeyUsageExtension(eku, false),
    await x509.AuthorityKeyIdentifierExtension.create(opts.ca.peculiar, false),
  ];
  const names: x509.JsonGeneralName[] = [
    ...(opts.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(opts.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(opts.uris ?? []).map((value) => ({ type: 'url' as const, value })),
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  if (opts.identity) {
    extensions.push(new x509.Extension(IDENTITY_OID, false, new Uint8Array(tlv(0x0c, Buffer.from(JSON.stringify(opts.identity))))));
  }
  const subject: x509.JsonName = [{ CN: [opts.commonName] }];
  for (const o of opts.organization ?? []) subject.push({ O: [o] });
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomBytes(16).toString('hex').replace(/^[89a-f]/, '1'),
    subject,
    issuer: opts.ca.peculiar.subjectName,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter,
    publicKey,
    signingKey: opts.ca.signingKey,
    signingAlgorithm: SIGN,
    extensions,
  });
  return { certPem: pemLine(cert.toString('pem')), notAfter };
}

function pemLine(pem: string): string {
  return pem.endsWith('\n') ? pem : `${pem}\n`;
}

/** Public key of a PEM certificate. */
export function certPublicKey(certPem: string): KeyObject {
  return createPublicKey(new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'pem' }));
}

/** Splits a PEM bundle into single certificates. */
export function splitPemBundle(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)?.map((p) => p.trimEnd() + '\n') ?? [];
}
