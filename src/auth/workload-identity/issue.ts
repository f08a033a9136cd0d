import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { isIP } from 'node:net';
import { UNSAFE_TEXT, type WorkloadIdentity } from '../../api/workload-identity-resource.js';
import {
  SVID_DEFAULT_TTL_MS,
  SVID_MAX_TTL_MS,
  type JwtAlgorithm,
  type JwtSvid,
  type X509Svid,
} from '../../api/workload-identity.js';
import type { ClientKey } from '../../crypto/keys.js';
import { issueCertificate } from '../../crypto/x509.js';
import { MwiError } from '../../errors.js';
import { parseDuration } from '../../util/duration.js';
import type { AttributeMap } from './attributes.js';
import type { WorkloadKeys } from './keys.js';
import { spiffeId } from './spiffe-id.js';
import { fillTemplate, segmentValueProblem } from './templates.js';

/** A DNS name a template may produce: labels of letters, digits and "-", or a leading "*." wildcard. */
const DNS_NAME =
  /^(\*\.)?([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

/** Rule: an attribute put into a hint brings no control or bidirectional-override characters. */
const hintValueProblem = (v: string): string | undefined =>
  UNSAFE_TEXT.test(v) ? 'holds control or bidirectional-override characters, which a hint may not' : undefined;

/**
 * Rule: an attribute put into a DNS SAN is one DNS label (letters, digits, "-"): a "." would add
 * labels under another domain, a "*" make a wildcard (issue #16, L1).
 */
export function dnsLabelValueProblem(v: string): string | undefined {
  return /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(v)
    ? undefined
    : 'cannot go into a DNS SAN: it must be one DNS label of letters, digits and "-" (no ".", no "*")';
}

/** The SPIFFE ID and hint of an identity for these attributes, templates filled and the ID checked. */
export function renderIdentity(
  wi: WorkloadIdentity,
  attrs: AttributeMap,
  trustDomain: string,
): { spiffeId: string; hint: string } {
  const path = fillTemplate(wi.spec.spiffe.id, attrs, 'spec.spiffe.id', segmentValueProblem);
  return {
    spiffeId: spiffeId(trustDomain, path),
    hint: fillTemplate(wi.spec.spiffe.hint, attrs, 'spec.spiffe.hint', hintValueProblem),
  };
}

/**
 * TTL of an SVID: what was asked (default 1h), at most the bot's roles allow, the identity's
 * maximum_ttl and 24 h; at least 1 s.
 */
export function svidTtlMs(asked: string | undefined, roleMaxMs: number, identityMax: string | undefined): number {
  const want = asked !== undefined ? parseDuration(asked)! : SVID_DEFAULT_TTL_MS;
  const idMax = identityMax !== undefined ? parseDuration(identityMax)! : SVID_MAX_TTL_MS;
  return Math.max(1000, Math.min(want, roleMaxMs, idMax, SVID_MAX_TTL_MS));
}

/**
 * An X.509-SVID (X509-SVID specification section 4): one URI SAN (the SPIFFE ID), CA false,
 * keyUsage critical with digitalSignature, EKU serverAuth and clientAuth, the identity's DNS SANs.
 */
export async function signX509Svid(
  keys: WorkloadKeys,
  wi: WorkloadIdentity,
  attrs: AttributeMap,
  publicKey: ClientKey,
  ttlMs: number,
  now: number,
): Promise<X509Svid & { serial: string }> {
  const { spiffeId: id, hint } = renderIdentity(wi, attrs, keys.trustDomain);
  const dnsNames = wi.spec.spiffe.x509.dns_sans.map((t, i) => {
    const field = `spec.spiffe.x509.dns_sans[${i}]`;
    const name = fillTemplate(t, attrs, field, dnsLabelValueProblem);
    if (name.length > 253 || !DNS_NAME.test(name))
      throw new MwiError('BAD_REQUEST', 'a DNS SAN is not a valid DNS name', { field });
    // an address in a DNS SAN is matched as a name by some clients: it belongs in an IP SAN, if anywhere
    if (isIP(name) !== 0) throw new MwiError('BAD_REQUEST', `a DNS SAN may not be an IP address (${name})`, { field });
    return name;
  });
  const { certPem, notAfter, serial } = await issueCertificate({
    ca: keys.ca,
    publicKey: publicKey.spki,
    // the SPIFFE ID is in the URI SAN; the subject only names the identity for people reading it
    commonName: wi.metadata.name.slice(0, 64),
    organization: [keys.trustDomain.slice(0, 64)],
    ttlMs,
    usage: 'client+server',
    dnsNames,
    uris: [id],
    now,
  });
  return { name: wi.metadata.name, spiffe_id: id, hint, cert_pem: certPem, expires_at: notAfter.toISOString(), serial };
}

/**
 * A JWT-SVID (JWT-SVID specification section 3): `sub` the SPIFFE ID, `aud`, `exp`, `iat`, a
 * `jti`, and `iss` when an issuer is configured (OIDC federation needs it); header `kid`, `typ: JWT`.
 */
export async function signJwtSvid(
  keys: WorkloadKeys,
  wi: WorkloadIdentity,
  attrs: AttributeMap,
  o: { audiences: string[]; ttlMs: number; now: number; alg: JwtAlgorithm; issuer: string | undefined },
): Promise<JwtSvid & { jti: string }> {
  const { spiffeId: id, hint } = renderIdentity(wi, attrs, keys.trustDomain);
  const signer = keys.signers[o.alg];
  const iat = Math.floor(o.now / 1000);
  const exp = Math.floor((o.now + o.ttlMs) / 1000);
  const jti = randomUUID();
  const jwt = new SignJWT({})
    .setProtectedHeader({ alg: o.alg, kid: signer.kid, typ: 'JWT' })
    .setSubject(id)
    .setAudience(o.audiences.length === 1 ? o.audiences[0]! : o.audiences)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .setJti(jti);
  if (o.issuer) jwt.setIssuer(o.issuer);
  const token = await jwt.sign(signer.key);
  return { name: wi.metadata.name, spiffe_id: id, hint, token, expires_at: new Date(exp * 1000).toISOString(), jti };
}
