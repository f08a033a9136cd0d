import { TOKEN_ID_FORM, type TestTokenReply, type TestTokenRequest } from '../api/admin.js';
import { MwiError } from '../errors.js';
import type { ExplainInput } from '../join/types.js';
import type { AuthContext } from './context.js';
import { view } from './join-context.js';
import { getBySecret, tokenKey, type StoredToken } from './tokens.js';

/** Longest identity token accepted (the join's own bound for a Kubernetes token). */
const MAX_ID_TOKEN = 16_384;

/** The input to explain: the identity token given, or the claims a refused join with this token recorded. */
async function explainInput(
  ctx: AuthContext,
  name: string,
  method: string,
  req: TestTokenRequest,
): Promise<ExplainInput> {
  if ((req.id_token === undefined) === (req.audit_uid === undefined))
    throw new MwiError('BAD_REQUEST', 'give either an identity token or the uid of a refused join', {
      field: 'id_token',
    });
  if (req.id_token !== undefined) {
    if (Buffer.byteLength(req.id_token, 'utf8') > MAX_ID_TOKEN)
      throw new MwiError('BAD_REQUEST', `longer than ${MAX_ID_TOKEN} bytes`, { field: 'id_token' });
    return { idToken: req.id_token };
  }
  const uid = req.audit_uid!;
  const [event] = await ctx.audit.recent(1, { uid });
  if (!event) throw new MwiError('NOT_FOUND', `no audit event with uid ${JSON.stringify(uid)}`);
  if (event.event !== 'bot.join' || event.success !== false)
    throw new MwiError('BAD_REQUEST', `audit event ${uid} is not a refused join (it is a ${event.event})`, {
      field: 'audit_uid',
    });
  if (event.token_id !== name)
    throw new MwiError('BAD_REQUEST', `audit event ${uid} is a join with another token`, { field: 'audit_uid' });
  // the claims were verified against the token as it was then: rules of another method would read them wrongly
  if (event.join_method !== undefined && event.join_method !== method)
    throw new MwiError(
      'BAD_REQUEST',
      `audit event ${uid} is a ${event.join_method} join, and the token now joins with ${method} (it was replaced ` +
        'since): its recorded claims cannot be tested against these rules; test an identity token with --id-token',
      { field: 'audit_uid' },
    );
  const claims = event.claims;
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims))
    throw new MwiError(
      'BAD_REQUEST',
      `the join refused at ${event.time ?? '?'} recorded no claims: only a join refused by its allow rules ` +
        `records claims (this one: ${event.reason ?? 'no reason recorded'}); test the identity token itself with ` +
        '--id-token',
      { field: 'audit_uid' },
    );
  return { recordedClaims: claims as Record<string, unknown>, recordedAt: event.time ?? '?' };
}

/**
 * `tctl tokens test`: the token's join checks on an identity token (or a refused join's recorded
 * claims), each reported; nothing is created, marked used or audited as a join. Administrators
 * only: the detail is what a refused caller is never told.
 */
export async function testToken(ctx: AuthContext, given: string, req: TestTokenRequest): Promise<TestTokenReply> {
  // the id tctl tokens ls shows, or (method token, as tctl get takes it) the secret, never repeated
  let item = await ctx.backend.get(tokenKey(given));
  if (!item && !TOKEN_ID_FORM.test(given)) item = (await getBySecret(ctx.backend, given, ctx.cas.challengeMac))?.item;
  if (!item)
    throw new MwiError(
      'NOT_FOUND',
      'no such token: no token has this id, nor (method token) this secret; tctl tokens ls lists the ids',
    );
  const token = JSON.parse(item.value) as StoredToken;
  const name = token.metadata.name;
  const method = token.spec.join_method;
  const handler = ctx.methods.get(method);
  if (!handler?.explain)
    throw new MwiError(
      'BAD_REQUEST',
      `token ${JSON.stringify(name)} joins with ${method}, which presents no platform identity token: ` +
        'tokens test checks the platform-signed methods (kubernetes, github, gitlab, ...)',
      { field: 'join_method' },
    );
  const input = await explainInput(ctx, name, method, req);
  const out = await handler.explain(view(name, token), input, ctx.cas.clusterName, ctx.now());
  return {
    token: name,
    join_method: method,
    bot_name: token.spec.bot_name,
    would_join: out.wouldJoin,
    checks: out.checks,
    rules: out.rules,
    ...(out.claims ? { claims: out.claims } : {}),
  };
}
