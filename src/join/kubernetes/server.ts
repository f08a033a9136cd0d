import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { signedContentId, type CompactJws } from '../../crypto/jws.js';
import { checkAllow, explainAllow } from '../jwt/allow.js';
import { explainRecorded } from '../jwt/explain.js';
import { checkFetchUrl, oidcSection } from '../jwt/jwks.js';
import { jwtServer } from '../jwt/method.js';
import { methodOptions, storedRules } from '../placement.js';
import { canonicalToken, LEEWAY_S } from '../jwt/verify.js';
import {
  JoinRefusal,
  type ExplainInput,
  type JoinExplanation,
  type JoinTokenView,
  type ServerDeps,
  type ServerJoinContext,
  type ServerJoinMethod,
  type ServerSection,
} from '../types.js';
import { KUBERNETES_ALLOW, KUBERNETES_REQUIRED, kubernetesSpec, type KubernetesSpec } from './wire.js';

/** mwi.yaml `kubernetes`: the API server `in_cluster` joins ask, if not the pod's own. */
export interface KubernetesConfig {
  apiServer?: string | undefined;
  caPath?: string | undefined;
  tokenPath?: string | undefined;
}

/** The Kubernetes API the Auth Service runs in, with its credential. */
interface KubernetesApi {
  apiServer: string;
  caPem?: string;
  token: string;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The Kubernetes API for `in_cluster` joins: mwi.yaml, else the pod's own environment. */
function kubernetesApi(cfg: KubernetesConfig, env: ServerDeps['env']): KubernetesApi | undefined {
  const host = env.KUBERNETES_SERVICE_HOST;
  const apiServer = cfg.apiServer ?? (host ? `https://${host}:${env.KUBERNETES_SERVICE_PORT ?? '443'}` : undefined);
  const tokenPath = cfg.tokenPath ?? `${SA_DIR}/token`;
  if (!apiServer || !existsSync(tokenPath)) return undefined;
  const caPath = cfg.caPath ?? `${SA_DIR}/ca.crt`;
  checkFetchUrl(apiServer, 'kubernetes.api_server');
  const token = readFileSync(tokenPath, 'utf8').trim();
  return { apiServer, token, ...(existsSync(caPath) ? { caPem: readFileSync(caPath, 'utf8') } : {}) };
}

/** mwi.yaml `kubernetes`, built into the API `in_cluster` joins ask (none: such joins are refused). */
export const kubernetesSection: ServerSection<KubernetesConfig, KubernetesApi | undefined> = {
  key: 'kubernetes',
  schema: z
    .object({
      api_server: z.string().url().optional(),
      ca_path: z.string().optional(),
      token_path: z.string().optional(),
    })
    .strict()
    .transform((k): KubernetesConfig => ({ apiServer: k.api_server, caPath: k.ca_path, tokenPath: k.token_path }))
    .default({}),
  build: (cfg, deps) => kubernetesApi(cfg, deps.env),
};

interface K8sClaims {
  'kubernetes.io'?: {
    namespace?: string;
    serviceaccount?: { name?: string; uid?: string };
    pod?: { name?: string; uid?: string };
  };
}

/** Projected service account tokens only: bound to a pod, expiring (legacy secret tokens never expire). */
function flatten(claims: Record<string, unknown>): Record<string, unknown> {
  const k = (claims as K8sClaims)['kubernetes.io'];
  return {
    ...claims,
    service_account: k?.namespace && k.serviceaccount?.name ? `${k.namespace}:${k.serviceaccount.name}` : undefined,
    pod: k?.pod?.name,
  };
}

const jwtHalf = jwtServer<KubernetesSpec>({
  name: 'kubernetes',
  schema: kubernetesSpec,
  issuer: (s) =>
    s.type === 'static_jwks'
      ? { issuer: s.static_jwks!.issuer, staticJwks: s.static_jwks!.jwks }
      : { issuer: s.oidc?.issuer, allowHttp: s.oidc?.insecure_allow_http_issuer === true },
  allowFields: KUBERNETES_ALLOW,
  requireOneOf: KUBERNETES_REQUIRED,
  maxLifetimeS: 48 * 3600,
  flatten,
  check(claims) {
    if (!claims.service_account)
      throw new JoinRefusal(
        'no kubernetes.io service account claims',
        'the join was refused: not a Kubernetes service account token',
      );
    if (!claims.pod)
      throw new JoinRefusal(
        'token not bound to a pod',
        'the join was refused: only projected (pod-bound) service account tokens are accepted',
      );
    return {};
  },
});

/**
 * `in_cluster`: the cluster's own TokenReview API decides (audience = our cluster name). Until it
 * has authenticated the token, every refusal is the generic one an unknown token gets (finding 8).
 */
async function reviewToken(
  token: unknown,
  api: KubernetesApi | undefined,
  deps: ServerDeps,
  clusterName: string,
): Promise<{ claims: { service_account: string }; jws: CompactJws }> {
  if (typeof token !== 'string' || token.length > 16_384) throw new JoinRefusal('no id_token in the payload');
  // the API server's decoder may forgive what ours refuses: only the canonical spelling is reviewed
  const jws = canonicalToken(token);
  if (!api)
    throw new JoinRefusal(
      'in_cluster: the Auth Service has no Kubernetes API configured (configure kubernetes in mwi.yaml)',
    );
  let res: { status: number; body: unknown };
  try {
    res = await deps.postJson(
      `${api.apiServer}/apis/authentication.k8s.io/v1/tokenreviews`,
      { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [clusterName] } },
      { authorization: `Bearer ${api.token}` },
      api.caPem,
    );
  } catch (err) {
    throw new JoinRefusal(`TokenReview failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  const status = (
    res.body as {
      status?: {
        authenticated?: boolean;
        error?: string;
        audiences?: string[];
        user?: { username?: string; extra?: Record<string, string[]> };
      };
    }
  )?.status;
  if (res.status >= 300 || !status) throw new JoinRefusal(`TokenReview HTTP ${res.status}`);
  if (!status.authenticated) throw new JoinRefusal(`TokenReview: not authenticated (${status.error ?? 'no reason'})`);
  if (!status.audiences?.includes(clusterName))
    throw new JoinRefusal(
      `TokenReview: audiences ${JSON.stringify(status.audiences)}`,
      "the join was refused: the token's audience is not this cluster",
    );
  const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(status.user?.username ?? '');
  if (!m)
    throw new JoinRefusal(
      `TokenReview: user ${status.user?.username} is not a service account`,
      'the join was refused: not a Kubernetes service account token',
    );
  if (!status.user?.extra?.['authentication.kubernetes.io/pod-name']) {
    throw new JoinRefusal(
      'TokenReview: token not bound to a pod',
      'the join was refused: only projected (pod-bound) service account tokens are accepted',
    );
  }
  return { claims: { service_account: `${m[1]}:${m[2]}` }, jws };
}

const IN_CLUSTER_POLICY = { fields: KUBERNETES_ALLOW, requireOneOf: KUBERNETES_REQUIRED };

/** An `in_cluster` join: reviewed, matched, and marked used. */
async function tokenReview(
  ctx: ServerJoinContext,
  api: KubernetesApi | undefined,
  deps: ServerDeps,
): Promise<Record<string, unknown>> {
  const token = (ctx.request.payload as { id_token?: unknown } | undefined)?.id_token;
  const { claims, jws } = await reviewToken(token, api, deps, ctx.clusterName);
  let rule;
  try {
    rule = checkAllow(storedRules(ctx.token.spec, 'kubernetes'), claims, IN_CLUSTER_POLICY);
  } catch (err) {
    // reviewed claims, kept with the refusal for `tctl tokens test --from-audit`
    if (err instanceof JoinRefusal) err.claims = claims;
    throw err;
  }
  // replay: without the token's own exp, remember it for the longest lifetime accepted
  if (!(await deps.markUsed(`kubernetes-signed-${signedContentId(jws)}`, ctx.now + (48 * 3600 + LEEWAY_S) * 1000))) {
    throw new JoinRefusal('token replayed', 'the join was refused: this identity token was already used');
  }
  return { service_account: claims.service_account, matched_rule: rule, reviewed_by: 'TokenReview' };
}

/** `tctl tokens test` for `in_cluster`: the review, then each rule; nothing is marked used. */
async function explainReview(
  token: JoinTokenView,
  input: ExplainInput,
  api: KubernetesApi | undefined,
  deps: ServerDeps,
  clusterName: string,
): Promise<JoinExplanation> {
  const rulesList = storedRules(token.spec, 'kubernetes');
  if ('recordedClaims' in input)
    return explainRecorded(rulesList, input.recordedClaims, input.recordedAt, IN_CLUSTER_POLICY);
  let claims;
  try {
    ({ claims } = await reviewToken(input.idToken.trim(), api, deps, clusterName));
  } catch (err) {
    const why = err instanceof JoinRefusal ? (err.detail ?? err.message) : String(err);
    return { checks: [{ check: 'TokenReview', ok: false, detail: why }], rules: [], wouldJoin: false };
  }
  const rules = explainAllow(rulesList, claims, IN_CLUSTER_POLICY);
  return {
    checks: [{ check: 'TokenReview', ok: true, detail: `the cluster's API authenticated ${claims.service_account}` }],
    rules,
    claims,
    wouldJoin: rules.some((r) => r.ok),
  };
}

export const kubernetesServer: ServerJoinMethod = {
  name: 'kubernetes',
  sections: [oidcSection, kubernetesSection],
  prepareToken: jwtHalf.prepareToken!,
  create(deps, section) {
    const jwt = jwtHalf.create(deps, section);
    const api = section(kubernetesSection);
    return {
      async verify(ctx) {
        const spec = kubernetesSpec.parse(methodOptions(ctx.token.spec, 'kubernetes'));
        if (spec.type === 'in_cluster') return { attributes: await tokenReview(ctx, api, deps) };
        return jwt.verify(ctx);
      },
      async explain(token, input, clusterName, now) {
        const spec = kubernetesSpec.parse(methodOptions(token.spec, 'kubernetes'));
        if (spec.type === 'in_cluster') return explainReview(token, input, api, deps, clusterName);
        return jwt.explain!(token, input, clusterName, now);
      },
    };
  },
};
