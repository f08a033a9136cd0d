import { X509Certificate } from 'node:crypto';
import { MwiError } from '../../errors.js';
import type { AuthContext } from '../context.js';
import { RawJson } from '../http.js';
import type { WorkloadKeys } from './keys.js';

// The public federation endpoints, on the Auth Service's listener at Teleport's paths: no client
// certificate. Consumers that need a publicly trusted certificate (AWS, GCP, Azure) reach them
// through the name of the operator's certificate (https_keypairs).

/** Teleport's paths (lib/web): the OpenID discovery document, the JWKS and the SPIFFE bundle. */
export const FEDERATION_PATHS = {
  discovery: '/workload-identity/.well-known/openid-configuration',
  /** The discovery document again, for an issuer configured without Teleport's /workload-identity path. */
  rootDiscovery: '/.well-known/openid-configuration',
  jwks: '/workload-identity/jwt-jwks.json',
  spiffeBundle: '/webapi/spiffe/bundle.json',
} as const;

/** How often a federated peer should fetch the SPIFFE bundle again (spiffe_refresh_hint, seconds). */
export const REFRESH_HINT_SECONDS = 300;

/**
 * How long a cache may keep a public federation document (Cache-Control max-age, seconds): below
 * the refresh hint, so that a peer that refetches on the hint does not get a stale copy from a cache.
 */
export const PUBLIC_MAX_AGE_SECONDS = 60;

/** A public document, cacheable by anyone for PUBLIC_MAX_AGE_SECONDS. */
const publicJson = (body: unknown): RawJson =>
  new RawJson(JSON.stringify(body), { 'cache-control': `public, max-age=${PUBLIC_MAX_AGE_SECONDS}` });

async function keysOf(ctx: AuthContext): Promise<WorkloadKeys> {
  if (!ctx.workload) throw new MwiError('NOT_FOUND', 'workload identity is not set up on this Auth Service');
  return ctx.workload.authorities.current();
}

/** The JWKS: every JWT-SVID key trusted now (public parts, with kid, alg and use). */
export async function jwks(ctx: AuthContext): Promise<RawJson> {
  return publicJson((await keysOf(ctx)).bundle.jwks);
}

/**
 * The OpenID Provider configuration (OpenID Connect Discovery 1.0 section 3) for the configured
 * issuer: what AWS IAM, GCP workload identity federation, Azure and Vault read to trust JWT-SVIDs.
 */
export async function discovery(ctx: AuthContext): Promise<RawJson> {
  const issuer = ctx.workload?.issuer;
  if (!issuer)
    throw new MwiError(
      'NOT_FOUND',
      'no issuer is configured: set workload_identity.issuer in mwi.yaml (https://PUBLIC_NAME/workload-identity)',
    );
  const keys = await keysOf(ctx);
  const origin = new URL(issuer).origin;
  return publicJson({
    issuer,
    jwks_uri: `${origin}${FEDERATION_PATHS.jwks}`,
    response_types_supported: ['id_token'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [...new Set(keys.bundle.jwks.keys.map((k) => k.alg))],
    claims_supported: ['sub', 'aud', 'exp', 'iat', 'iss', 'jti'],
    scopes_supported: ['openid'],
  });
}

/**
 * The SPIFFE trust bundle (SPIFFE Trust Domain and Bundle section 4, served per SPIFFE Federation
 * section 5, `https_web` profile): the X.509 authorities (`use: x509-svid`, one `x5c` each) and
 * the JWT keys (`use: jwt-svid`, with kid), `spiffe_sequence` and `spiffe_refresh_hint`.
 */
export async function spiffeBundle(ctx: AuthContext): Promise<RawJson> {
  const keys = await keysOf(ctx);
  const x509 = keys.bundle.x509_authorities_pem.map((pem) => {
    const cert = new X509Certificate(pem);
    const jwk = cert.publicKey.export({ format: 'jwk' });
    return { ...jwk, use: 'x509-svid', x5c: [cert.raw.toString('base64')] };
  });
  const jwt = keys.bundle.jwks.keys.map(({ alg: _alg, ...k }) => ({ ...k, use: 'jwt-svid' }));
  return publicJson({
    keys: [...x509, ...jwt],
    spiffe_sequence: keys.sequence,
    spiffe_refresh_hint: REFRESH_HINT_SECONDS,
  });
}
