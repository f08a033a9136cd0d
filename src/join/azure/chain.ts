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

/** A signer name is allowed: one of `names`, or a name under one (`eastus.metadata.azure.com`). */
export function signerNameAllowed(cn: string, names: readonly string[]): boolean {
  const lower = cn.toLowerCase();
  return names.some((n) => lower === n.toLowerCase() || lower.endsWith(`.${n.toLowerCase()}`));
}
