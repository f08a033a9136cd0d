import { decodeProtectedHeader, jwtVerify, type JWTPayload, type createLocalJWKSet } from 'jose';
import { assertCanonicalCompactJws, signedContentId, type CompactJws } from '../../crypto/jws.js';
import { JoinRefusal } from '../types.js';

/** Asymmetric algorithms only: never `none`, never an HMAC keyed with a public key. */
export const ALLOWED_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'];
/** Clock leeway on exp, nbf and iat. */
export const LEEWAY_S = 60;

export interface JwtRules {
  /** Expected `iss`, compared exactly (only a static JWKS for one cluster may leave it out). */
  issuer?: string;
  /** `aud` must contain this. */
  audience: string;
  keys: ReturnType<typeof createLocalJWKSet>;
  now: number;
  /** Longest accepted lifetime (exp - iat), e.g. 1h for CI tokens, 48h for Kubernetes. */
  maxLifetimeS: number;
  /** Claims that must be present. */
  required?: string[];
}

/**
 * The identity token as a canonical compact JWS. Lenient base64url decoding would let one signed
 * token be sent in many spellings (whitespace, padding, spare bits), each looking new to a replay
 * marker keyed on the text; only the canonical spelling is accepted (finding 3).
 */
export function canonicalToken(token: unknown): CompactJws {
  try {
    return assertCanonicalCompactJws(token, 'id_token');
  } catch (err) {
    // an error about the field names it already ("id_token: not a canonical compact JWS: ...")
    const why = err instanceof Error ? err.message : String(err);
    throw new JoinRefusal(why.startsWith('id_token: ') ? why : `id_token: ${why}`);
  }
}

const KID = /^[A-Za-z0-9._~+/=-]{1,200}$/;

/**
 * The `kid` of a token, if it is well-formed (it is only ever a map key, never a path or URL).
 * Refusals are generic: nothing is proven yet (finding 8).
 */
export function tokenKid(token: string): string | undefined {
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw new JoinRefusal('token is not a JWS');
  }
  if (header.kid !== undefined && (typeof header.kid !== 'string' || !KID.test(header.kid))) {
    throw new JoinRefusal(`malformed kid ${JSON.stringify(header.kid).slice(0, 80)}`);
  }
  return header.kid;
}

/**
 * jose's codes for checks made after the signature verified, with the public message for each.
 * Every other failure (malformed, unknown key, bad signature, forbidden algorithm) happens before
 * the caller has proven anything, and gets the generic refusal an unknown token gets: a precise
 * answer there would tell an unauthenticated caller that the token name exists (finding 8).
 */
const AFTER_SIGNATURE: Readonly<Record<string, (claim: string | undefined) => string>> = {
  ERR_JWT_EXPIRED: () => 'the identity token has expired',
  ERR_JWT_CLAIM_VALIDATION_FAILED: (claim) => `the identity token's ${claim ?? 'claims'} claim is not acceptable`,
  ERR_JWT_INVALID: () => 'the identity token is malformed',
};

/**
 * Verifies a platform JWT: signature by the issuer's keys with an asymmetric algorithm, `iss`
 * exact, `aud` containing ours, `exp`/`nbf`/`iat` with 60 s leeway, bounded lifetime.
 * Only the canonical spelling of a token verifies. Returns the claims and `signedId`, the id of
 * what the issuer signed, for replay markers. Refusals carry a precise reason for the audit log;
 * the public message names the check only once the signature has verified, and is the generic
 * refusal before.
 */
export async function verifyPlatformJwt(
  token: unknown,
  rules: JwtRules,
  checked?: CompactJws,
): Promise<{ payload: JWTPayload; signedId: string }> {
  // `checked`: the caller already ran canonicalToken and tokenKid on this token (to pick its keys)
  let jws = checked;
  if (!jws) {
    jws = canonicalToken(token);
    tokenKid(token as string);
  }
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token as string, rules.keys, {
      ...(rules.issuer ? { issuer: rules.issuer } : {}),
      audience: rules.audience,
      algorithms: ALLOWED_ALGS,
      clockTolerance: LEEWAY_S,
      currentDate: new Date(rules.now),
      requiredClaims: ['exp', 'iat', ...(rules.required ?? [])],
    }));
  } catch (err) {
    const e = err as { code?: string; claim?: string; message?: string };
    const reason = `jwt: ${e.code ?? 'invalid'}: ${e.message ?? ''}`;
    const after = AFTER_SIGNATURE[e.code ?? ''];
    throw after ? new JoinRefusal(reason, `the join was refused: ${after(e.claim)}`) : new JoinRefusal(reason);
  }
  const iat = payload.iat!;
  const exp = payload.exp!;
  if (iat * 1000 > rules.now + LEEWAY_S * 1000)
    throw new JoinRefusal(
      'jwt: iat in the future',
      "the join was refused: the identity token's iat claim is in the future",
    );
  if (exp - iat > rules.maxLifetimeS)
    throw new JoinRefusal(
      `jwt: lifetime ${exp - iat}s over ${rules.maxLifetimeS}s`,
      'the join was refused: the identity token lives too long',
    );
  return { payload, signedId: signedContentId(jws) };
}
