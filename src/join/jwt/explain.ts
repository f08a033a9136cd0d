import { compactVerify, decodeJwt, decodeProtectedHeader, type JWTPayload } from 'jose';
import type { ExplainCheck, ExplainInput, JoinExplanation, JoinTokenView } from '../types.js';
import { explainAllow } from './allow.js';
import type { AllowPolicy } from './rules.js';
import { ALLOWED_ALGS, canonicalToken, LEEWAY_S, tokenKid, verifyPlatformJwt, type JwtRules } from './verify.js';

const reasonOf = (err: unknown) =>
  err instanceof Error ? ((err as { detail?: string }).detail ?? err.message) : String(err);
const iso = (s: unknown) => (typeof s === 'number' ? new Date(s * 1000).toISOString() : String(s));
const show = (v: unknown) => (v === undefined ? '(absent)' : JSON.stringify(v));

/** The token's claims as it states them, before anything verified them (to say what it claims to be). */
function unverified(token: string): { payload?: JWTPayload; alg?: string } {
  try {
    return { payload: decodeJwt(token), alg: decodeProtectedHeader(token).alg };
  } catch {
    return {};
  }
}

/**
 * Each claim check verifyPlatformJwt makes, one by one, for a person to read. The verdict is not
 * taken from these: the join's own verification runs too, and decides.
 */
function claimChecks(p: JWTPayload, rules: Omit<JwtRules, 'keys'>): ExplainCheck[] {
  const now = rules.now / 1000;
  const aud = p.aud === undefined ? [] : Array.isArray(p.aud) ? p.aud : [p.aud];
  const lifetime = typeof p.exp === 'number' && typeof p.iat === 'number' ? p.exp - p.iat : undefined;
  const missing = ['exp', 'iat', ...(rules.required ?? [])].filter((c) => p[c] === undefined);
  return [
    rules.issuer === undefined
      ? {
          check: 'issuer',
          ok: true,
          detail: `not compared (a static JWKS without an issuer); token says ${show(p.iss)}`,
        }
      : { check: 'issuer', ok: p.iss === rules.issuer, detail: `want ${show(rules.issuer)}, token has ${show(p.iss)}` },
    {
      check: 'audience',
      ok: aud.includes(rules.audience),
      detail: `want ${show(rules.audience)} among the token's aud, token has ${show(p.aud)}`,
    },
    {
      check: 'claims present',
      ok: missing.length === 0,
      detail: missing.length ? `missing: ${missing.join(', ')}` : 'yes',
    },
    {
      check: 'expiry',
      ok: typeof p.exp === 'number' && p.exp + LEEWAY_S > now,
      detail: `exp ${iso(p.exp)} (now ${new Date(rules.now).toISOString()}, ${LEEWAY_S}s leeway)`,
    },
    {
      check: 'not before',
      ok: p.nbf === undefined || (typeof p.nbf === 'number' && p.nbf - LEEWAY_S <= now),
      detail: p.nbf === undefined ? 'no nbf' : `nbf ${iso(p.nbf)}`,
    },
    {
      check: 'issued at',
      ok: typeof p.iat === 'number' && p.iat - LEEWAY_S <= now,
      detail: `iat ${iso(p.iat)}`,
    },
    {
      check: 'lifetime',
      ok: lifetime !== undefined && lifetime <= rules.maxLifetimeS,
      detail: `exp - iat = ${lifetime ?? '?'}s, at most ${rules.maxLifetimeS}s`,
    },
  ];
}

/** What an explanation needs of a JWT method: its rules, keys, extra check and claim shape. */
export interface JwtExplainDeps {
  rules: Omit<JwtRules, 'keys' | 'now'>;
  /** The issuer's keys (from the JWKS cache or the spec's static JWKS); throws if unavailable. */
  keys(kid: string | undefined): Promise<JwtRules['keys']>;
  /** Where keys() takes them from, for a person: the issuer's URL or the spec's static_jwks. */
  keySource: string;
  /** The method's platform check on the verified claims (throws a JoinRefusal). */
  check?(claims: Record<string, unknown>): Promise<unknown>;
  flatten(payload: JWTPayload): Record<string, unknown>;
  /** The verified claims the `allow` rules can name. */
  named(claims: Record<string, unknown>): Record<string, unknown>;
  policy: AllowPolicy;
  /** The token's stored `allow` rules. */
  allow(token: JoinTokenView): unknown;
}

/** Rules on recorded claims: what `--from-audit` can re-run (the signature was checked when they were recorded). */
export function explainRecorded(
  rulesList: unknown,
  claims: Record<string, unknown>,
  at: string,
  policy: AllowPolicy,
): JoinExplanation {
  const rules = explainAllow(rulesList, claims, policy);
  return {
    checks: [
      {
        check: 'recorded claims',
        ok: true,
        detail:
          `from the join refused at ${at}: its signature, issuer, audience and expiry were checked then, against ` +
          "the token's configuration at that time; a change since to the token's issuer or keys is not re-checked",
      },
    ],
    rules,
    claims,
    wouldJoin: rules.some((r) => r.ok),
  };
}

/**
 * A JWT join explained: each check the join makes, in the join's order, stopping where the join
 * would stop before the signature is proven; the allow rules field by field. Nothing is marked
 * used. The outcome is the join's own verification, not a re-implementation of it.
 */
export async function explainJwt(
  d: JwtExplainDeps,
  token: JoinTokenView,
  input: ExplainInput,
  now: number,
): Promise<JoinExplanation> {
  if ('recordedClaims' in input)
    return explainRecorded(d.allow(token), input.recordedClaims, input.recordedAt, d.policy);
  const idToken = input.idToken.trim();
  const checks: ExplainCheck[] = [];
  const stop = (check: string, err: unknown): JoinExplanation => {
    const { payload, alg } = unverified(idToken);
    const says = payload ? `; the token says iss ${show(payload.iss)}, aud ${show(payload.aud)}, alg ${show(alg)}` : '';
    checks.push({ check, ok: false, detail: `${reasonOf(err)}${says}` });
    return { checks, rules: [], wouldJoin: false };
  };
  let jws;
  let kid;
  try {
    jws = canonicalToken(idToken);
    kid = tokenKid(idToken);
    checks.push({ check: 'form', ok: true, detail: `a compact JWS${kid ? `, kid ${show(kid)}` : ', no kid'}` });
  } catch (err) {
    return stop('form', err);
  }
  let keys;
  try {
    keys = await d.keys(kid);
    checks.push({ check: 'keys', ok: true, detail: `the issuer's keys: ${d.keySource}` });
  } catch (err) {
    return stop('keys', err);
  }
  let payload: JWTPayload;
  try {
    const { protectedHeader, payload: bytes } = await compactVerify(idToken, keys, { algorithms: ALLOWED_ALGS });
    payload = JSON.parse(new TextDecoder().decode(bytes)) as JWTPayload;
    checks.push({ check: 'signature', ok: true, detail: `${protectedHeader.alg} by one of the issuer's keys` });
  } catch (err) {
    return stop('signature', err);
  }
  checks.push(...claimChecks(payload, { ...d.rules, now }));
  // the join's own verification decides; a difference from the checks above is shown, not hidden
  const verdict = await verifyPlatformJwt(idToken, { ...d.rules, keys, now }, jws).then(
    () => undefined,
    (err: unknown) => reasonOf(err),
  );
  const claimsFailed = checks.some((c) => c.ok === false);
  if (verdict !== undefined && !claimsFailed) checks.push({ check: 'verification', ok: false, detail: verdict });
  if (verdict === undefined && claimsFailed)
    checks.push({ check: 'verification', ok: true, detail: 'accepted by the join verification despite the above' });
  const claims = d.flatten(payload);
  const named = d.named(claims);
  if (verdict !== undefined) return { checks, rules: [], claims: named, wouldJoin: false };
  if (d.check) {
    try {
      await d.check(claims);
      checks.push({ check: 'platform', ok: true, detail: 'the platform-specific checks passed' });
    } catch (err) {
      checks.push({ check: 'platform', ok: false, detail: reasonOf(err) });
      return { checks, rules: [], claims: named, wouldJoin: false };
    }
  }
  const rules = explainAllow(d.allow(token), claims, d.policy);
  checks.push({
    check: 'not yet used',
    ok: null,
    detail: 'each identity token joins once; tokens test does not spend it, and cannot tell if a join did',
  });
  return { checks, rules, claims: named, wouldJoin: rules.some((r) => r.ok) };
}
