import { randomUUID } from 'node:crypto';
import type { ChallengeRequest, ChallengeResponse, BotCredentialResponse, JoinRequest } from '../api/wire.js';
import { parseClientKey } from '../crypto/keys.js';
import { failureReason, isMwiError, MwiError } from '../errors.js';
import { joinMethodInfo, unknownJoinMethod } from '../join/catalog.js';
import { JoinRefusal, type JoinHandler, type JoinVerdict } from '../join/types.js';
import { botAccess, grantedTtlMs } from './access.js';
import type { Claims } from './claims.js';
import { DEFAULT_TTL_MS, type AuthContext } from './context.js';
import { signBotIdentity } from './issue.js';
import { createInstanceOp, keyFingerprint, refreshInstance, type ContinueCheck } from './instances.js';
import {
  joinContext,
  joinRecordKey,
  loadToken,
  view,
  type Join,
  type JoinAttempt,
  type JoinRecordValue,
} from './join-context.js';
import type { TxOp } from '../storage/backend.js';
import { RESOURCE_NAME } from '../api/resources.js';
import { legacyTokenId, tokenFingerprint, tokenId } from './tokens.js';
import { CHALLENGE_TTL_MS, JoinChallenge, openChallenge, sealChallenge } from './challenges.js';
import { createLogger } from '../util/log.js';

/**
 * A challenge handed out is logged, not audited: a caller without credentials can ask for one
 * (the audit log keeps only what such a caller cannot flood: see SplitAuditLog).
 */
const log = createLogger('auth');

/**
 * A join is a pipeline of small steps: parse the request (parseJoin), open its challenge
 * (openJoinChallenge), load the token (loadToken), let the method verify it and return its
 * verdict (with the context joinContext gives it), then create the bot instance in one
 * conditional write (createInstance) or continue the caller's (continueInstance).
 */

function checkShape<T extends { token: string; join_method: string }>(body: unknown): T {
  const r = body as Partial<T> | null;
  if (typeof r !== 'object' || r === null) throw new MwiError('BAD_REQUEST', 'expected a JSON object');
  if (typeof r.token !== 'string' || r.token.length === 0 || r.token.length > 512)
    throw new MwiError('BAD_REQUEST', 'expected a token', { field: 'token' });
  if (typeof r.join_method !== 'string')
    throw new MwiError('BAD_REQUEST', 'expected a join method', { field: 'join_method' });
  // a name that cannot be a token (e.g. `../x`) is refused by its shape, before any storage key is
  // built from it; secret names are only ever hashed, so any text will do for them
  if (!joinMethodInfo(r.join_method)?.secretName && !RESOURCE_NAME.test(r.token)) {
    throw new MwiError('BAD_REQUEST', 'expected a token name (letters, digits, ".", "_", "@" or "-", at most 128)', {
      field: 'token',
    });
  }
  return r as T;
}

function methodFor(ctx: AuthContext, name: string): JoinHandler {
  const method = ctx.methods.get(name);
  if (!method) {
    throw new MwiError('BAD_REQUEST', unknownJoinMethod(name), { field: 'join_method' });
  }
  return method;
}

/**
 * How the audit log names the token a caller asked for: its id once it is known to exist (or when
 * the id is already a hash); otherwise a keyed fingerprint, since an unknown name may be a secret
 * sent with the wrong join method.
 */
function tokenRef(
  ctx: AuthContext,
  req: { token: string; join_method: string },
  id: string,
  exists: boolean,
): Record<string, string> {
  return exists || joinMethodInfo(req.join_method)?.secretName
    ? { token_id: id }
    : { token_fingerprint: tokenFingerprint(ctx.cas.challengeMac, req.token) };
}

/** Audits a refused join or challenge and turns it into what the caller may see. */
function refuse(
  ctx: AuthContext,
  err: unknown,
  event: 'bot.join' | 'bot.challenge',
  fields: Record<string, unknown>,
): never {
  // a refusal after the platform's signature verified keeps the verified claims (tokens test --from-audit)
  const claims = err instanceof JoinRefusal && err.claims ? { claims: err.claims } : {};
  ctx.audit.emit({ event, success: false, ...fields, reason: failureReason(err), ...claims });
  if (err instanceof JoinRefusal) throw err;
  if (isMwiError(err, 'ACCESS_DENIED')) {
    throw new JoinRefusal(err.message, 'the join was refused; the Auth Service audit log has the reason');
  }
  throw err;
}

/**
 * POST /v1/join/challenge: the first step of challenge-response methods. Stateless (nothing is
 * stored: see challenges.ts) and the same for every token name: an unknown, expired, locked or
 * otherwise unusable token gets a decoy made exactly like a real challenge, so the answer never
 * tells an unauthenticated caller whether a token exists (docs/security.md says the one limit: a
 * caller offering the bound public key is told to sign with it); the join that follows is
 * refused generically, and the reason is audited now.
 */
export async function handleChallenge(ctx: AuthContext, body: unknown, remoteAddr: string): Promise<ChallengeResponse> {
  const req = checkShape<ChallengeRequest>(body);
  const method = methodFor(ctx, req.join_method);
  if (!method.challenge)
    throw new MwiError('BAD_REQUEST', `join method ${req.join_method} has no challenge step`, { field: 'join_method' });
  const id = tokenId(req.token, req.join_method, ctx.cas.challengeMac);
  const base = { clusterName: ctx.cas.clusterName, now: ctx.now(), payload: req.payload };
  const known = { token: false };
  let ch: Awaited<ReturnType<NonNullable<JoinHandler['challenge']>>>;
  try {
    const { token } = await loadToken(ctx, id, req.join_method, known);
    ch = await method.challenge({ ...base, token: view(id, token) });
    log.info('join challenge issued', { method: req.join_method, token_id: id, remote_addr: remoteAddr });
  } catch (err) {
    if (!(err instanceof JoinRefusal)) throw err; // malformed input: refused whether or not the token exists
    ctx.audit.emit({
      event: 'bot.challenge',
      success: false,
      join_method: req.join_method,
      ...tokenRef(ctx, req, id, known.token),
      remote_addr: remoteAddr,
      reason: failureReason(err),
    });
    ch = await method.challenge({ ...base, token: { id, botName: '', spec: {}, status: {} } });
  }
  const challengeId = sealChallenge(ctx.cas.challengeMac, {
    token_id: id,
    join_method: req.join_method,
    expires: base.now + CHALLENGE_TTL_MS,
    data: ch.store,
  });
  return { ...ch.send, challenge_id: challengeId };
}

/** The request's shape, method and public key; nothing is read yet. */
function parseJoin(ctx: AuthContext, body: unknown, remoteAddr: string, callerClaims: Claims | undefined): JoinAttempt {
  const req = checkShape<JoinRequest>(body);
  const method = methodFor(ctx, req.join_method);
  const publicKey = parseClientKey(req.public_key, 'public_key');
  const id = tokenId(req.token, req.join_method, ctx.cas.challengeMac);
  return {
    req,
    method,
    publicKey,
    fingerprint: keyFingerprint(publicKey),
    tokenId: id,
    caller: callerClaims?.kind === 'bot' ? callerClaims : undefined,
    audit: { join_method: req.join_method, token_id: id, remote_addr: remoteAddr },
  };
}

/** The challenge a join answers, if its method has one: authenticated and unexpired (no storage read). */
function openJoinChallenge(ctx: AuthContext, a: JoinAttempt): JoinChallenge | undefined {
  if (!a.method.challenge) return undefined;
  const challengeId = (a.req.payload as { challenge_id?: unknown } | undefined)?.challenge_id;
  const claims = openChallenge(ctx.cas.challengeMac, challengeId, ctx.now());
  if (claims.token_id !== a.tokenId || claims.join_method !== a.req.join_method) {
    throw new JoinRefusal('challenge was issued for another token');
  }
  return new JoinChallenge(challengeId as string, claims);
}

/**
 * POST /v1/join: checks the token and the method's proof, creates a bot instance (or continues
 * one, for a refresh) and signs its renewable identity. Every refusal is audited with its
 * reason; the caller gets only a generic message.
 */
export async function handleJoin(
  ctx: AuthContext,
  body: unknown,
  remoteAddr: string,
  callerClaims?: Claims,
): Promise<BotCredentialResponse> {
  const a = parseJoin(ctx, body, remoteAddr, callerClaims);
  const known = { token: false };
  let botName: string | undefined;
  try {
    // the challenge is checked before the token is even looked up: the same refusal whether or
    // not the token exists (it carries no storage read and no token-dependent answer)
    const challenge = openJoinChallenge(ctx, a);
    const legacy = joinMethodInfo(a.req.join_method)?.secretName ? legacyTokenId(a.req.token) : undefined;
    const loaded = await loadToken(ctx, a.tokenId, a.req.join_method, known, legacy);
    a.tokenId = a.audit.token_id = loaded.id;
    botName = loaded.token.spec.bot_name;
    const access = await botAccess(ctx, botName);
    const ttlMs = grantedTtlMs(a.req.ttl_seconds, access.maxTtlMs, DEFAULT_TTL_MS);
    const botUid = access.bot.status?.uid;
    const j: Join = { ...a, challenge, loaded, botName, botUid, ttlMs, newInstanceId: randomUUID() };
    const verdict = await a.method.verify(joinContext(ctx, j));
    const renewable = joinMethodInfo(a.req.join_method)?.renewable ?? false;
    // a platform-signed re-join by a tbot that still holds this bot's identity continues its
    // instance (as Teleport does), instead of leaving one instance behind per re-join
    const continues = verdict.refreshInstance ?? (!renewable && a.caller?.bot === botName);
    const identity = continues ? await continueInstance(ctx, j, verdict) : await createInstance(ctx, j, verdict);
    return { ...identity, renewable, ...(verdict.methodData ? { method_data: verdict.methodData } : {}) };
  } catch (err) {
    const { token_id: _id, ...rest } = a.audit;
    const token = tokenRef(ctx, a.req, a.tokenId, known.token);
    refuse(ctx, err, 'bot.join', { ...(botName ? { bot_name: botName } : {}), ...rest, ...token });
  }
}

/**
 * A new instance: its identity is signed, then one conditional write creates the instance,
 * consumes the token if the verdict says so (it is used up if and only if the instance is
 * created: of concurrent joins with a single-use token exactly one commits) and spends the
 * challenge.
 */
async function createInstance(ctx: AuthContext, j: Join, verdict: JoinVerdict): Promise<BotCredentialResponse> {
  const { identity, tlsSerial } = await signBotIdentity(ctx, j.botName, j.newInstanceId, 1, j.publicKey, j.ttlMs);
  const { item } = j.loaded;
  const committed = await ctx.backend.transact([
    ...(verdict.consumesToken ? [{ op: 'delete' as const, key: item.key, revision: item.revision }] : []),
    createInstanceOp(ctx, {
      botName: j.botName,
      botUid: j.botUid,
      instanceId: j.newInstanceId,
      joinMethod: j.req.join_method,
      tokenId: j.tokenId,
      attributes: verdict.attributes,
      keyFingerprint: j.fingerprint,
      credentialExpires: identity.expires,
    }),
    ...(j.challenge?.ops() ?? []),
    ...(verdict.records ?? []).map((r) => recordOp(j, r)),
  ]);
  if (!committed) {
    await j.challenge?.refuseIfUsed(ctx.backend);
    await refuseIfRecordTaken(ctx, j, verdict);
    throw new JoinRefusal('token already used');
  }
  j.challenge?.committed();
  if (verdict.consumesToken) ctx.audit.emit({ event: 'token.use', success: true, bot_name: j.botName, ...j.audit });
  ctx.audit.emit({
    event: 'bot.join',
    success: true,
    bot_name: j.botName,
    bot_instance_id: j.newInstanceId,
    generation: 1,
    tls_serial: tlsSerial,
    ...verdict.attributes,
    ...j.audit,
  });
  for (const e of verdict.events ?? [])
    ctx.audit.emit({ ...e, success: true, bot_name: j.botName, bot_instance_id: j.newInstanceId, ...j.audit });
  return identity;
}

/** The write of a join record (see JoinRecord): created, or replacing the stale one the method saw. */
function recordOp(j: Join, r: NonNullable<JoinVerdict['records']>[number]): TxOp {
  const value: JoinRecordValue = { bot: j.botName, bot_instance_id: j.newInstanceId, data: r.data };
  const k = joinRecordKey(j.req.join_method, r.id);
  return r.replaces === undefined
    ? { op: 'create', key: k, value: JSON.stringify(value) }
    : { op: 'compareAndSwap', key: k, revision: r.replaces, value: JSON.stringify(value) };
}

/** After a failed write: a refusal naming the join record another join wrote meanwhile, if one did. */
async function refuseIfRecordTaken(ctx: AuthContext, j: Join, verdict: JoinVerdict): Promise<void> {
  for (const r of verdict.records ?? []) {
    const now = await ctx.backend.get(joinRecordKey(j.req.join_method, r.id));
    if (now?.revision !== r.replaces) throw new JoinRefusal(`join record ${r.id} was written by a concurrent join`);
  }
}

/**
 * A refresh: the caller's own instance moves to its next generation (the generation
 * counter's rules apply as for a renewal), if it came from this method and token.
 */
async function continueInstance(ctx: AuthContext, j: Join, verdict: JoinVerdict): Promise<BotCredentialResponse> {
  if (!j.caller) throw new JoinRefusal('refresh without a bot identity');
  if (verdict.records?.length) throw new TypeError('a refresh writes no join records');
  await j.challenge?.commitAlone(ctx.backend);
  const origin = { remoteAddr: j.audit.remote_addr, keyFingerprint: j.fingerprint };
  const identity = await refreshInstance(ctx, j.caller, j.publicKey, j.ttlMs, origin, sameMethodAndToken(j));
  ctx.audit.emit({
    event: 'bot.join',
    success: true,
    bot_name: j.botName,
    bot_instance_id: identity.instance_id,
    generation: identity.generation,
    refresh: true,
    ...verdict.attributes,
    ...j.audit,
  });
  return identity;
}

/** A refresh join continues only an instance that joined with the same method and token. */
function sameMethodAndToken(j: Join): ContinueCheck {
  return async (first) => {
    if (first.join_method !== j.req.join_method || first.join_token_name !== j.tokenId) {
      throw new MwiError('RENEW_DENIED', 'this identity came from another join method or token; join without it');
    }
    return {};
  };
}
