import { signedContentId } from '../../crypto/jws.js';
import { checkAllow } from '../jwt/allow.js';
import { jwtServer } from '../jwt/method.js';
import { canonicalToken, LEEWAY_S } from '../jwt/verify.js';
import { JoinRefusal, type ServerJoinContext, type ServerJoinMethod } from '../types.js';
import { KUBERNETES_ALLOW, KUBERNETES_REQUIRED, kubernetesSpec, type KubernetesSpec } from './wire.js';

interface K8sClaims {
  'kubernetes.io'?: { namespace?: string; serviceaccount?: { name?: string; uid?: string }; pod?: { name?: string; uid?: string } };
}

/** Projected service account tokens only: bound to a pod, expiring (legacy secret tokens never expire). */
function flatten(claims: Record<string, unknown>): Record<string, unknown> {
  const k = (claims as K8sClaims)['kubernetes.io'];
  return { ...claims, service_account: k?.namespace && k.serviceaccount?.name ? `${k.namespace}:${k.serviceaccount.name}` : undefined, pod: k?.pod?.name };
}

const jwtHalf = jwtServer<KubernetesSpec>({
  name: 'kubernetes',
  schema: kubernetesSpec,
  issuer: (s) => (s.type === 'static_jwks' ? { issuer: s.static_jwks!.issuer, staticJwks: s.static_jwks!.jwks } : { issuer: s.oidc?.issuer }),
  allowFields: KUBERNETES_ALLOW,
  requireOneOf: KUBERNETES_REQUIRED,
  maxLifetimeS: 48 * 3600,
  flatten,
  check(claims) {
    if (!claims.service_account) throw new JoinRefusal('no kubernetes.io service account claims', 'the join was refused: not a Kubernetes service account token');
    if (!claims.pod) throw new JoinRefusal('token not bound to a pod', 'the join was refused: only projected (pod-bound) service account tokens are accepted');
    return {};
  },
});

/**
 * `in_cluster`: the cluster's own TokenReview API decides (audience = our cluster name). Until it
 * has authenticated the token, every refusal is the generic one an unknown token gets (finding 8).
 */
async function tokenReview(ctx: ServerJoinContext): Promise<Record<string, unknown>> {
  const token = (ctx.request.payload as { id_token?: unknown } | undefined)?.id_token;
  if (typeof token !== 'string' || token.length > 16_384) throw new JoinRefusal('no id_token in the payload');
  // the API server's decoder may forgive what ours refuses: only the canonical spelling is reviewed
  const jws = canonicalToken(token);
  const api = ctx.platform.kubernetes;
  if (!api) throw new JoinRefusal('in_cluster: the Auth Service has no Kubernetes API configured (configure kubernetes in mwi.yaml)');
  let res: { status: number; body: unknown };
  try {
    res = await ctx.platform.postJson(
      `${api.apiServer}/apis/authentication.k8s.io/v1/tokenreviews`,
      { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [ctx.clusterName] } },
      { authorization: `Bearer ${api.token}` },
      api.caPem,
    );
  } catch (err) {
    throw new JoinRefusal(`TokenReview failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  const status = (res.body as { status?: { authenticated?: boolean; error?: string; audiences?: string[]; user?: { username?: string; extra?: Record<string, string[]> } } })?.status;
  if (res.status >= 300 || !status) throw new JoinRefusal(`TokenReview HTTP ${res.status}`);
  if (!status.authenticated) throw new JoinRefusal(`TokenReview: not authenticated (${status.error ?? 'no reason'})`);
  if (!status.audiences?.includes(ctx.clusterName)) throw new JoinRefusal(`TokenReview: audiences ${JSON.stringify(status.audiences)}`, "the join was refused: the token's audience is not this cluster");
  const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(status.user?.username ?? '');
  if (!m) throw new JoinRefusal(`TokenReview: user ${status.user?.username} is not a service account`, 'the join was refused: not a Kubernetes service account token');
  if (!status.user?.extra?.['authentication.kubernetes.io/pod-name']) {
    throw new JoinRefusal('TokenReview: token not bound to a pod', 'the join was refused: only projected (pod-bound) service account tokens are accepted');
  }
  const claims = { service_account: `${m[1]}:${m[2]}` };
  const rule = checkAllow(ctx.token.spec.allow, claims, { fields: KUBERNETES_ALLOW, requireOneOf: KUBERNETES_REQUIRED });
  // replay: without the token's own exp, remember it for the longest lifetime accepted
  if (!(await ctx.platform.markUsed(`kubernetes-signed-${signedContentId(jws)}`, ctx.now + (48 * 3600 + LEEWAY_S) * 1000))) {
    throw new JoinRefusal('token replayed', 'the join was refused: this identity token was already used');
  }
  return { service_account: claims.service_account, matched_rule: rule, reviewed_by: 'TokenReview' };
}

export const kubernetesServer: ServerJoinMethod = {
  name: 'kubernetes',
  prepareToken: jwtHalf.prepareToken!,
  async verify(ctx) {
    const spec = kubernetesSpec.parse(ctx.token.spec.kubernetes ?? {});
    if (spec.type === 'in_cluster') return { attributes: await tokenReview(ctx) };
    return jwtHalf.verify(ctx);
  },
};
