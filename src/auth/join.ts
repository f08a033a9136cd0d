import { randomUUID } from 'node:crypto';
import { CompactSign, compactVerify } from 'jose';
import type { ChallengeRequest, ChallengeResponse, IdentityResponse, JoinRequest } from '../api/wire.js';
import { parseClientKey } from '../crypto/keys.js';
import { failureReason, isMwiError, MwiError } from '../errors.js';
import { joinMethodInfo, joinMethodNames } from '../join/catalog.js';
import { SERVER_METHODS } from '../join/servers.js';
import { JoinRefusal, type JoinTokenView, type ServerJoinMethod } from '../join/types.js';
import { activeLock, botAccess, grantedTtlMs } from './access.js';
import type { Claims } from './claims.js';
import { DEFAULT_TTL_MS, type AuthContext } from './context.js';
import { signBotIdentity } from './issue.js';
import { createInstanceOp, instanceKey, instanceState, keyFingerprint, refreshInstance } from './instances.js';
import { createLock } from './locks.js';
import { RESOURCE_NAME, type BotInstance, type StoredToken } from './resources.js';
import { tokenFingerprint, tokenId, tokenKey } from './tokens.js';
import { CHALLENGE_TTL_MS, JoinChallenge, openChallenge, sealChallenge } from './challenges.js';

const STATUS_RETRIES = 5;

function checkShape<T extends { token: string; join_method: string }>(body: unknown): T {
  const r = body as Partial<T> | null;
  if (typeof r !== 'object' || r === null) throw new MwiError('BAD_REQUEST', 'expected a JSON object');
  if (typeof r.token !== 'string' || r.token.length === 0 || r.token.length > 512) throw new MwiError('BAD_REQUEST', 'expected a token', { field: 'token' });
  if (typeof r.join_method !== 'string') throw new MwiError('BAD_REQUEST', 'expected a join method', { field: 'join_method' });
  // a name that cannot be a token (e.g. `../x`) is refused by its shape, before any storage key is
  // built from it; secret names are only ever hashed, so any text will do for them
  if (!joinMethodInfo(r.join_method)?.secretName && !RESOURCE_NAME.test(r.token)) {
    throw new MwiError('BAD_REQUEST', 'expected a token name (letters, digits, ".", "_", "@" or "-", at most 128)', { field: 'token' });
  }
  return r as T;
}

function methodFor(name: string): ServerJoinMethod {
  const method = SERVER_METHODS.get(name);
  if (!method) {
    throw new MwiError('BAD_REQUEST', `unknown join method ${JSON.stringify(name)} (expected one of: ${joinMethodNames().join(', ')})`, { field: 'join_method' });
  }
  return method;
}

function view(id: string, t: StoredToken): JoinTokenView {
  return { id, botName: t.spec.bot_name, spec: t.spec, status: (t.status ?? {}) as Record<string, unknown>, secretHash: t.secret_hash };
}

/** Loads a token for a join and applies the rules every method shares. */
async function loadToken(ctx: AuthContext, id: string, method: string, known?: { token: boolean }) {
  const item = await ctx.backend.get(tokenKey(id));
  if (!item) throw new JoinRefusal('token not found');
  // from here the name is known to be a token's, not a secret sent with the wrong method: the
  // audit log may name it
  if (known) known.token = true;
  const token = JSON.parse(item.value) as StoredToken;
  if (token.spec.join_method !== method) throw new JoinRefusal(`token is for join method ${token.spec.join_method}`);
  if (token.metadata.expires && Date.parse(token.metadata.expires) <= ctx.now()) throw new JoinRefusal('token expired');
  // an unauthenticated caller learns neither the bot's name nor the lock's message: the same
  // refusal as an unknown token, the reason in the audit log only
  const lock = activeLock(ctx, token.spec.bot_name, undefined, id);
  if (lock) throw new JoinRefusal(`bot ${token.spec.bot_name} or its join token is locked: ${lock}`);
  return { item, token };
}

/**
 * How the audit log names the token a caller asked for: its id once it is known to exist (or when
 * the id is already a hash); otherwise a keyed fingerprint, since an unknown name may be a secret
 * sent with the wrong join method.
 */
function tokenRef(ctx: AuthContext, req: { token: string; join_method: string }, id: string, exists: boolean): Record<string, string> {
  return exists || joinMethodInfo(req.join_method)?.secretName ? { token_id: id } : { token_fingerprint: tokenFingerprint(ctx.cas.challengeMac, req.token) };
}

/** Audits a refused join or challenge and turns it into what the caller may see. */
function refuse(ctx: AuthContext, err: unknown, event: 'bot.join' | 'bot.challenge', fields: Record<string, unknown>): never {
  ctx.audit.emit({ event, success: false, ...fields, reason: failureReason(err) });
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
  const method = methodFor(req.join_method);
  if (!method.challenge) throw new MwiError('BAD_REQUEST', `join method ${req.join_method} has no challenge step`, { field: 'join_method' });
  const id = tokenId(req.token, req.join_method);
  const base = { clusterName: ctx.cas.clusterName, now: ctx.now(), payload: req.payload };
  const known = { token: false };
  let ch: Awaited<ReturnType<NonNullable<ServerJoinMethod['challenge']>>>;
  try {
    const { token } = await loadToken(ctx, id, req.join_method, known);
    ch = await method.challenge({ ...base, token: view(id, token) });
  } catch (err) {
    if (!(err instanceof JoinRefusal)) throw err; // malformed input: refused whether or not the token exists
    ctx.audit.emit({ event: 'bot.challenge', success: false, join_method: req.join_method, ...tokenRef(ctx, req, id, known.token), remote_addr: remoteAddr, reason: failureReason(err) });
    ch = await method.challenge({ ...base, token: { id, botName: '', spec: {}, status: {} } });
  }
  const challengeId = sealChallenge(ctx.cas.challengeMac, { token_id: id, join_method: req.join_method, expires: base.now + CHALLENGE_TTL_MS, data: ch.store });
  return { ...ch.send, challenge_id: challengeId };
}

/**
 * POST /v1/join: checks the token and the method's proof, creates a bot instance (or continues
 * one, for a refresh) and signs its renewable identity. Every refusal is audited with its
 * reason; the caller gets only a generic message.
 */
export async function handleJoin(ctx: AuthContext, body: unknown, remoteAddr: string, callerClaims?: Claims): Promise<IdentityResponse> {
  const req = checkShape<JoinRequest>(body);
  const method = methodFor(req.join_method);
  const publicKey = parseClientKey(req.public_key, 'public_key');
  const fingerprint = keyFingerprint(publicKey);
  const id = tokenId(req.token, req.join_method);
  const audit = { join_method: req.join_method, token_id: id, remote_addr: remoteAddr };
  const known = { token: false };
  let botName: string | undefined;
  try {
    // the challenge is checked before the token is even looked up: the same refusal whether or
    // not the token exists (it carries no storage read and no token-dependent answer)
    const challenge = openJoinChallenge(ctx, req, id);
    let { item, token } = await loadToken(ctx, id, req.join_method, known);
    botName = token.spec.bot_name;
    const access = await botAccess(ctx, botName);
    const newInstanceId = randomUUID();
    let consumeRevision: number | undefined;
    // revisions of the instances `decide` looked at: an instance it ends is deleted only as seen
    const seen = new Map<string, number>();
    const endOps = async (ids: string[]) => {
      const ops: Array<{ op: 'delete'; key: string; revision: number }> = [];
      for (const instanceId of ids) {
        const k = instanceKey(botName!, instanceId);
        const revision = seen.get(instanceId) ?? (await ctx.backend.get(k))?.revision;
        if (revision !== undefined) ops.push({ op: 'delete', key: k, revision });
      }
      return ops;
    };
    const caller = callerClaims?.kind === 'bot' ? { bot: callerClaims.bot, instance: callerClaims.instance, generation: callerClaims.generation } : undefined;
    const verdict = await method.verify({
      request: req,
      token: view(id, token),
      clusterName: ctx.cas.clusterName,
      now: ctx.now(),
      newInstanceId,
      caller,
      challenge: challenge?.data,
      consumeChallenge: async () => {
        if (!challenge) throw new TypeError('this join method has no challenge step');
        challenge.prove();
      },
      platform: ctx.platform,
      consumeToken: () => {
        // deleted in the same conditional write that creates the instance (below)
        consumeRevision = item.revision;
      },
      updateTokenStatus: async (decide) => {
        for (let i = 0; i < STATUS_RETRIES; i++) {
          seen.clear();
          const { status: next, end = [] } = await decide((token.status ?? {}) as Record<string, unknown>);
          const value = JSON.stringify({ ...token, status: next });
          try {
            // one conditional write: the new status, the end of the instance the key is rebound
            // away from (never two instances for one key, not even for a moment) and the
            // challenge's use (a join refused before here wrote nothing)
            const ends = await endOps(end);
            const ok = await ctx.backend.transact([{ op: 'compareAndSwap', key: item.key, revision: item.revision, value, expires: item.expires }, ...ends, ...(challenge?.ops() ?? [])]);
            if (!ok) {
              await challenge?.refuseIfUsed(ctx.backend);
              throw new MwiError('COMPARE_FAILED', 'token or replaced instance changed');
            }
            challenge?.committed();
            item = (await ctx.backend.get(item.key)) ?? item;
            for (const op of ends) {
              ctx.audit.emit({ event: 'resource.deleted', success: true, bot_name: botName, resource: `bot_instance/${botName!}/${op.key.split('/').pop()!}`, user: 'mwi', reason: 'replaced by a later join with the same bound key', ...audit });
            }
            token = { ...token, status: next };
            return;
          } catch (err) {
            if (!isMwiError(err, 'COMPARE_FAILED')) throw err;
            ({ item, token } = await loadToken(ctx, id, req.join_method));
          }
        }
        throw new JoinRefusal('token status kept changing concurrently');
      },
      instanceStatus: async (instanceId) => {
        const it = await ctx.backend.get(instanceKey(botName!, instanceId));
        if (!it) return undefined;
        seen.set(instanceId, it.revision);
        return instanceState(JSON.parse(it.value) as BotInstance, ctx.now(), fingerprint);
      },
      lockToken: async (reason) => {
        const name = await createLock(ctx, { join_token: id }, reason);
        ctx.audit.emit({ event: 'lock.created', success: true, bot_name: botName, token_id: id, reason, resource: `lock/${name}` });
      },
      signState: async (claims) =>
        new CompactSign(Buffer.from(JSON.stringify({ ...claims, iat: Math.floor(ctx.now() / 1000) })))
          .setProtectedHeader({ alg: 'ES256', typ: 'mwi-join-state' })
          .sign(ctx.cas.joinState.privateKey),
      verifyState: async (doc) => {
        try {
          const { payload } = await compactVerify(doc, ctx.cas.joinState.publicKey, { algorithms: ['ES256'] });
          return JSON.parse(Buffer.from(payload).toString('utf8')) as Record<string, unknown>;
        } catch {
          return undefined;
        }
      },
    });

    // single use is the method's to enforce once the proof verified; a method that forgot cannot
    // let a challenge be answered twice
    if (challenge && !challenge.isProven) throw new TypeError(`join method ${req.join_method} did not consume its challenge`);
    const ttlMs = grantedTtlMs(req.ttl_seconds, access.maxTtlMs, DEFAULT_TTL_MS);
    const renewable = joinMethodInfo(req.join_method)?.renewable ?? false;
    // a platform-signed re-join by a tbot that still holds this bot's identity continues its
    // instance (as Teleport does), instead of leaving one instance behind per re-join
    const continued = verdict.refreshInstance ?? (!renewable && caller?.bot === botName ? caller.instance : undefined);
    if (continued) {
      if (!callerClaims || callerClaims.kind !== 'bot') throw new JoinRefusal('refresh without a bot identity');
      await challenge?.commitAlone(ctx.backend);
      const identity = await refreshInstance(ctx, callerClaims, publicKey, ttlMs, { remoteAddr, keyFingerprint: fingerprint }, async (first) => {
        if (first.join_method !== req.join_method || first.join_token_name !== id) {
          throw new MwiError('RENEW_DENIED', 'this identity came from another join method or token; join without it');
        }
        return {};
      });
      ctx.audit.emit({ event: 'bot.join', success: true, bot_name: botName, bot_instance_id: identity.instance_id, generation: identity.generation, refresh: true, ...verdict.attributes, ...audit });
      return { ...identity, renewable, ...(verdict.methodData ? { method_data: verdict.methodData } : {}) };
    }
    const { identity, tlsSerial } = await signBotIdentity(ctx, botName, newInstanceId, 1, publicKey, ttlMs);
    // one conditional write: the token is consumed if and only if the instance is created, and
    // of concurrent joins with a single-use token exactly one commits
    const committed = await ctx.backend.transact([
      ...(consumeRevision !== undefined ? [{ op: 'delete' as const, key: tokenKey(id), revision: consumeRevision }] : []),
      createInstanceOp(ctx, {
        botName,
        botUid: access.bot.status?.uid,
        instanceId: newInstanceId,
        joinMethod: req.join_method,
        tokenId: id,
        attributes: verdict.attributes,
        keyFingerprint: fingerprint,
        credentialExpires: identity.expires,
      }),
      ...(challenge?.ops() ?? []),
    ]);
    if (!committed) {
      await challenge?.refuseIfUsed(ctx.backend);
      throw new JoinRefusal('token already used');
    }
    challenge?.committed();
    if (consumeRevision !== undefined) ctx.audit.emit({ event: 'token.use', success: true, bot_name: botName, ...audit });
    ctx.audit.emit({ event: 'bot.join', success: true, bot_name: botName, bot_instance_id: newInstanceId, generation: 1, tls_serial: tlsSerial, ...verdict.attributes, ...audit });
    return { ...identity, renewable, ...(verdict.methodData ? { method_data: verdict.methodData } : {}) };
  } catch (err) {
    const { token_id: _id, ...rest } = audit;
    refuse(ctx, err, 'bot.join', { ...(botName ? { bot_name: botName } : {}), ...rest, ...tokenRef(ctx, req, id, known.token) });
  }
}

/** The challenge a join answers, if its method uses one: authenticated and unexpired (no storage read). */
function openJoinChallenge(ctx: AuthContext, req: JoinRequest, id: string): JoinChallenge | undefined {
  if (!SERVER_METHODS.get(req.join_method)?.challenge) return undefined;
  const challengeId = (req.payload as { challenge_id?: unknown } | undefined)?.challenge_id;
  const claims = openChallenge(ctx.cas.challengeMac, challengeId, ctx.now());
  if (claims.token_id !== id || claims.join_method !== req.join_method) throw new JoinRefusal('challenge was issued for another token');
  return new JoinChallenge(challengeId as string, claims);
}
