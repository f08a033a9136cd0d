import { X509Certificate } from 'node:crypto';
import * as pkijs from 'pkijs';

/** Longest path accepted from the signing certificate to a pinned root (Azure's is leaf, issuing CA, root). */
const MAX_DEPTH = 4;
/** Most intermediates a join may carry. */
export const MAX_INTERMEDIATES = 4;

function inValidity(cert: X509Certificate, now: number): boolean {
  return Date.parse(cert.validFrom) <= now && now <= Date.parse(cert.validTo);
}

/** `issuer` signed `cert`: names and key identifiers match (checkIssued) and the signature verifies. */
function issued(issuer: X509Certificate, cert: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/**
 * Checks that `leaf` chains to one of the pinned `roots` through `intermediates` (any order, the
 * caller's and so untrusted: each is only a candidate link, used if it is a CA that signed the
 * certificate below it), every certificate on the path valid at `now`. Returns the subjects from
 * the leaf to the root; throws an Error naming what is missing otherwise.
 */
export function verifyChain(
  leaf: Buffer,
  intermediates: readonly Buffer[],
  roots: readonly X509Certificate[],
  now: number,
): string[] {
  let cert = new X509Certificate(leaf);
  const candidates = intermediates.map((der) => new X509Certificate(der)).filter((c) => c.ca);
  const path = [cert];
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    const stale = path.find((c) => !inValidity(c, now));
    if (stale) throw new Error(`certificate ${JSON.stringify(stale.subject)} is not valid now`);
    const root = roots.find((r) => issued(r, cert));
    if (root) {
      if (!inValidity(root, now)) throw new Error(`pinned root ${JSON.stringify(root.subject)} is not valid now`);
      return [...path, root].map((c) => c.subject.replace(/\n/g, ', '));
    }
    const next = candidates.find((c) => !path.some((p) => p.raw.equals(c.raw)) && issued(c, cert));
    if (!next) throw new Error(`no pinned root or intermediate issued ${JSON.stringify(cert.subject)}`);
    path.push(next);
    cert = next;
  }
  throw new Error(`no pinned root within ${MAX_DEPTH} certificates`);
}

/** The subject's one common name (DER of the certificate), or undefined if it has none or several. */
export function commonName(der: Buffer): string | undefined {
  const cert = pkijs.Certificate.fromBER(new Uint8Array(der));
  const cns = cert.subject.typesAndValues.filter((tv) => tv.type === '2.5.4.3');
  if (cns.length !== 1) return undefined;
  const value: unknown = (cns[0]!.value as { valueBlock?: { value?: unknown } }).valueBlock?.value;
  return typeof value === 'string' ? value : undefined;
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * A signer name is allowed: one of `names` exactly, or one DNS label under one
 * (`eastus.metadata.azure.com`). Azure's IMDS guide says the signing certificates may carry
 * `*.metadata.azure.com` and tells verifiers to accept a subdomain; a wildcard covers one label,
 * so `a.b.metadata.azure.com`, `evilmetadata.azure.com`, an empty label or a literal `*` are not.
 */
export function signerNameAllowed(cn: string, names: readonly string[]): boolean {
  if (!/^[\x21-\x7e]+$/.test(cn)) return false;
  const lower = cn.toLowerCase();
  return names.some((n) => {
    const name = n.toLowerCase();
    if (lower === name) return true;
    if (!lower.endsWith(`.${name}`)) return false;
    return LABEL.test(lower.slice(0, -name.length - 1));
  });
}

const KEY_USAGE = '2.5.29.15';
const BASIC_CONSTRAINTS = '2.5.29.19';

/**
 * Why the signing certificate (DER) may not sign documents, or undefined: a CA certificate
 * (basicConstraints CA:TRUE) is not an end entity, and a key usage without digitalSignature does
 * not allow signing (RFC 5280 4.2.1.3, 4.2.1.9). No basicConstraints, or no keyUsage, is fine.
 */
export function signerUsageProblem(der: Buffer): string | undefined {
  const cert = pkijs.Certificate.fromBER(new Uint8Array(der));
  for (const ext of cert.extensions ?? []) {
    if (ext.extnID === BASIC_CONSTRAINTS) {
      const bc = ext.parsedValue as pkijs.BasicConstraints | undefined;
      if (!bc) return 'its basicConstraints do not parse';
      if (bc.cA === true) return 'it is a CA certificate (basicConstraints CA:TRUE), not an end entity';
    }
    if (ext.extnID === KEY_USAGE) {
      const bits = ext.parsedValue as { valueBlock?: { valueHexView?: Uint8Array } } | undefined;
      const first = bits?.valueBlock?.valueHexView?.[0];
      if (first === undefined) return 'its keyUsage does not parse';
      // digitalSignature is the first named bit: the high bit of the first byte
      if ((first & 0x80) === 0) return 'its keyUsage does not include digitalSignature';
    }
  }
  return undefined;
}
