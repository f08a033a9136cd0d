import { MwiError } from '../../errors.js';
import { parseWith } from '../../util/parse.js';
import type { z } from 'zod';
import {
  JoinRefusal,
  type JoinVerdict,
  type ServerDeps,
  type ServerJoinContext,
  type ServerJoinMethod,
} from '../types.js';
import { checkAllow } from './allow.js';
import { oidcSection, staticKeys, type JwksCache } from './jwks.js';
import { methodOptions, storedRules, teleportPlacement } from '../placement.js';
import { assertAllowRules, type AllowField, type AllowPolicy } from './rules.js';
import { explainJwt, type JwtExplainDeps } from './explain.js';
import { canonicalToken, LEEWAY_S, tokenKid, verifyPlatformJwt } from './verify.js';
import type { JwtJoinPayload } from './wire.js';

export interface JwtMethodDefinition<S> {
  name: string;
  /**
   * Validates the method's block of the token spec (`spec[name]`, without its `allow` rules,
   * which `allowFields` checks), with Teleport's field names.
   */
  schema: z.ZodType<S, z.ZodTypeDef, unknown>;
  /**
   * The issuer to trust, and a static JWKS if the spec gives one (no discovery then).
   * `allowHttp`: the spec allows an http:// issuer (Kubernetes `insecure_allow_http_issuer`).
   */
  issuer(spec: S): { issuer: string | undefined; staticJwks?: string | undefined; allowHttp?: boolean };
  /** The audience tokens must carry (default: the cluster name). */
  audience?(spec: S, clusterName: string): string;
  /**
   * `allow` rule fields → the claim each checks, how, and the value type a rule gives; a
   * function when the block decides (Spacelift `enable_glob_matching`).
   */
  allowFields: Readonly<Record<string, AllowField>> | ((spec: S) => Readonly<Record<string, AllowField>>);
  /**
   * Groups of `allow` fields: every rule sets at least one field of each group, so that it names
   * the workload (Teleport's rules, api/types/provisioning.go). Checked at token creation.
   */
  requireOneOf: ReadonlyArray<ReadonlyArray<string>>;
  maxLifetimeS: number;
  required?: string[];
  /** Extra platform checks on the verified claims (e.g. Kubernetes: bound tokens only). */
  check?(claims: Record<string, unknown>, spec: S): Promise<Record<string, unknown>> | Record<string, unknown>;
  /** Flattens nested claims into the names `allowFields` use. */
  flatten?(claims: Record<string, unknown>): Record<string, unknown>;
}

/**
 * A token of a method whose `allow` rules live under the method (`spec.<name>.allow`), checked
 * and normalized at creation: the rules moved there from the deprecated `spec.allow` (with a
 * note), refused in both places, and each rule checked against the method's policy (which
 * `policyOf` makes from the spec, after checking the method's block).
 */
export function prepareRulesToken(
  name: string,
  input: Record<string, unknown>,
  policyOf: (spec: Readonly<Record<string, unknown>>) => AllowPolicy,
): { spec: Record<string, unknown>; notes: string[] } {
  const here = `spec.${name}.allow`;
  const policy = policyOf(input);
  const { spec, moved } = teleportPlacement(input, name);
  if (input.allow !== undefined && !moved)
    throw new MwiError('BAD_REQUEST', `give the rules once, in ${here} (Teleport's place for them)`, {
      field: 'spec.allow',
    });
  // a rule that names no workload would match every workload on the platform: refused here,
  // naming the rule where the user wrote it
  assertAllowRules(storedRules(spec, name), policy, moved ? 'spec.allow' : here);
  const deprecated =
    `spec.allow is deprecated for join method ${name}: ` +
    `the rules were stored as ${here}, where Teleport keeps them`;
  return { spec: { ...spec }, notes: moved ? [deprecated] : [] };
}

/**
 * The server half shared by every platform that signs a JWT: verify it against the issuer's keys,
 * check the rules, match `allow`, accept each token once. A method is a definition, not code.
 * Its issuers' keys come through mwi.yaml's `oidc` section (oidcSection).
 */
export function jwtServer<S>(def: JwtMethodDefinition<S>): ServerJoinMethod {
  const parseSpec = (spec: Readonly<Record<string, unknown>>): S =>
    parseWith(def.schema, methodOptions(spec, def.name), { code: 'BAD_REQUEST', path: ['spec', def.name] });
  const policyOf = (s: S): AllowPolicy => ({
    fields: typeof def.allowFields === 'function' ? def.allowFields(s) : def.allowFields,
    requireOneOf: def.requireOneOf,
  });
  return {
    name: def.name,
    sections: [oidcSection],
    prepareToken: (input) => prepareRulesToken(def.name, input, (spec) => policyOf(parseSpec(spec))),
    create(deps, section) {
      const jwks = section(oidcSection);
      return {
        verify: async (ctx) => {
          const spec = parseSpec(ctx.token.spec);
          return verifyJwtJoin(ctx, def, spec, policyOf(spec), jwks, deps);
        },
        explain: async (token, input, clusterName, now) => {
          const spec = parseSpec(token.spec);
          return explainJwt(explainDeps(def, spec, policyOf(spec), jwks, clusterName), token, input, now);
        },
      };
    },
  };
}

/** The keys of the token's issuer: its spec's static JWKS, or the issuer's (cached) JWKS. */
async function issuerKeys<S>(def: JwtMethodDefinition<S>, spec: S, jwks: JwksCache, kid: string | undefined) {
  const { issuer, staticJwks, allowHttp } = def.issuer(spec);
  try {
    return staticJwks
      ? staticKeys(staticJwks, `spec.${def.name}.static_jwks`)
      : await jwks.keysFor(issuer!, kid, allowHttp === true);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new JoinRefusal(`keys of ${issuer ?? 'static JWKS'} unavailable: ${why}`);
  }
}

/** What the join checks a token against (everything but the keys and the time). */
function jwtRules<S>(def: JwtMethodDefinition<S>, spec: S, clusterName: string) {
  const { issuer } = def.issuer(spec);
  return {
    ...(issuer ? { issuer } : {}),
    audience: def.audience ? def.audience(spec, clusterName) : clusterName,
    maxLifetimeS: def.maxLifetimeS,
    ...(def.required ? { required: def.required } : {}),
  };
}

/** The claims `allow` rules can name, as verified: recorded on the instance and in the audit log. */
function namedClaims(policy: AllowPolicy, claims: Record<string, unknown>): Record<string, unknown> {
  const named = Object.values(policy.fields).map((f): [string, unknown] => [f.claim, claims[f.claim]]);
  return Object.fromEntries(named.filter(([, v]) => v !== undefined));
}

/** explainJwt's view of one method and token spec. */
function explainDeps<S>(
  def: JwtMethodDefinition<S>,
  spec: S,
  policy: AllowPolicy,
  jwks: JwksCache,
  clusterName: string,
): JwtExplainDeps {
  return {
    rules: jwtRules(def, spec, clusterName),
    keys: (kid) => issuerKeys(def, spec, jwks, kid),
    keySource: def.issuer(spec).staticJwks ? `the spec's static_jwks` : (def.issuer(spec).issuer ?? '?'),
    ...(def.check ? { check: async (claims: Record<string, unknown>) => def.check!(claims, spec) } : {}),
    flatten: (payload) => (def.flatten ? def.flatten(payload) : payload),
    named: (claims) => namedClaims(policy, claims),
    policy,
    allow: (token) => storedRules(token.spec, def.name),
  };
}

/** One JWT join: the token from the payload, verified, matched, and marked used. */
async function verifyJwtJoin<S>(
  ctx: ServerJoinContext,
  def: JwtMethodDefinition<S>,
  spec: S,
  policy: AllowPolicy,
  jwks: JwksCache,
  deps: ServerDeps,
): Promise<JoinVerdict> {
  const token = (ctx.request.payload as Partial<JwtJoinPayload> | undefined)?.id_token;
  // until the signature verifies, every refusal is the generic one an unknown token gets (finding 8)
  if (typeof token !== 'string') throw new JoinRefusal('no id_token in the payload');
  // a non-canonical spelling is refused before any key is fetched for it
  const jws = canonicalToken(token);
  const keys = await issuerKeys(def, spec, jwks, tokenKid(token));
  const { payload, signedId } = await verifyPlatformJwt(
    token,
    { ...jwtRules(def, spec, ctx.clusterName), keys, now: ctx.now },
    jws,
  );
  const claims = def.flatten ? def.flatten(payload) : (payload as Record<string, unknown>);
  const extra = def.check ? await def.check(claims, spec) : {};
  const attributes = namedClaims(policy, claims);
  let rule;
  try {
    rule = checkAllow(storedRules(ctx.token.spec, def.name), claims, policy);
  } catch (err) {
    // verified claims, kept with the refusal for `tctl tokens test --from-audit`
    if (err instanceof JoinRefusal) err.claims = attributes;
    throw err;
  }
  // each token joins once within its lifetime: keyed on what the issuer signed, not on the
  // signature's spelling (another valid signature over the same content is the same token)
  const fresh = await deps.markUsed(`${def.name}-signed-${signedId}`, (payload.exp! + LEEWAY_S) * 1000);
  if (!fresh) throw new JoinRefusal('token replayed', 'the join was refused: this identity token was already used');
  return { attributes: { ...attributes, matched_rule: rule, ...extra } };
}
