import { CompactSign, compactVerify } from 'jose';
import type { JoinRequest } from '../api/wire.js';
import type { ClientKey } from '../crypto/keys.js';
import { isMwiError, MwiError } from '../errors.js';
import {
  JoinRefusal,
  type InstanceState,
  type JoinHandler,
  type JoinTokenView,
  type ServerJoinContext,
  type TokenStatusUpdate,
} from '../join/types.js';
import { key, type Item } from '../storage/backend.js';
import { activeLock } from './access.js';
import type { JoinChallenge } from './challenges.js';
import type { AuthContext } from './context.js';
import { instanceKey, instanceState, type BotClaims } from './instances.js';
import { createLock } from './locks.js';
import type { BotInstance } from '../api/resources.js';
import { tokenKey, type StoredToken } from './tokens.js';

/**
 * A join in progress, and what its method works with: the token as loaded, and the
 * ServerJoinContext `verify` gets (the token's status written in one conditional write, the
 * bot's instances, the token's lock, the join-state key).
 */

const STATUS_RETRIES = 5;

/** Storage key of a method's join record (see JoinRecord). */
export function joinRecordKey(method: string, id: string): string {
  return key('join_records', method, id);
}

/** A join record as stored: the method's data and the bot instance whose join wrote it. */
export interface JoinRecordValue {
  bot: string;
  bot_instance_id: string;
  data: Record<string, unknown>;
}

/** What a join may learn of a bot instance: as stored, ended also when a lock targets it. */
async function instanceNow(
  ctx: AuthContext,
  bot: string,
  instanceId: string,
  fingerprint: string,
): Promise<{ item: Item; state: InstanceState } | undefined> {
  const it = await ctx.backend.get(instanceKey(bot, instanceId));
  if (!it) return undefined;
  const state = instanceState(JSON.parse(it.value) as BotInstance, ctx.now(), fingerprint);
  return { item: it, state: { ...state, ended: state.ended || activeLock(ctx, bot, instanceId) !== undefined } };
}

/** What a method sees of a stored token. */
export function view(id: string, t: StoredToken): JoinTokenView {
  const status = t.status ?? {};
  return { id, botName: t.spec.bot_name, spec: t.spec, status, secretHash: t.secret_hash };
}

/** A token loaded for a join; a status write replaces it with what it stored. */
export interface LoadedToken {
  item: Item;
  token: StoredToken;
  /** The id it was found under: `id`, or the `legacyId` loadToken was given. */
  id: string;
}

/** Loads a token for a join and applies the rules every method shares. */
export async function loadToken(
  ctx: AuthContext,
  id: string,
  method: string,
  known?: { token: boolean },
  legacyId?: string,
): Promise<LoadedToken> {
  let item = await ctx.backend.get(tokenKey(id));
  // a secret-named token made before ids were keyed: read only when the keyed id misses
  if (!item && legacyId !== undefined) {
    item = await ctx.backend.get(tokenKey(legacyId));
    if (item) id = legacyId;
  }
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
  return { item, token, id };
}

/** A join request that passed its shape checks, and what every later step derives from it. */
export interface JoinAttempt {
  req: JoinRequest;
  method: JoinHandler;
  publicKey: ClientKey;
  /** `sha256:<hex>` of the public key to certify. */
  fingerprint: string;
  /** Storage id of the token named (a hash of a secret name). */
  tokenId: string;
  /** The bot identity the caller presented, if any. */
  caller: BotClaims | undefined;
  /** What every audit event of this join carries. */
  audit: { join_method: string; token_id: string; remote_addr: string };
}

/** A join from the moment its token is loaded. */
export interface Join extends JoinAttempt {
  challenge: JoinChallenge | undefined;
  /** Kept current: a status write replaces it, and the instance's creation is conditional on it. */
  loaded: LoadedToken;
  botName: string;
  /** The bot's `status.uid` (see BotInstance.spec.bot_uid). */
  botUid: string | undefined;
  /** The lifetime the identity gets: what was asked, within the bot's roles' limit. */
  ttlMs: number;
  newInstanceId: string;
}

/** What the method's `verify` may see and do for join `j`. */
export function joinContext(ctx: AuthContext, j: Join): ServerJoinContext {
  // revisions of the instances `decide` looked at: an instance it ends is deleted only as seen
  const seen = new Map<string, number>();
  return {
    request: j.req,
    token: view(j.tokenId, j.loaded.token),
    clusterName: ctx.cas.clusterName,
    now: ctx.now(),
    newInstanceId: j.newInstanceId,
    caller: j.caller && { bot: j.caller.bot, instance: j.caller.instance, generation: j.caller.generation },
    challenge: j.challenge?.data,
    updateTokenStatus: (decide) => writeTokenStatus(ctx, j, seen, decide),
    instanceStatus: async (instanceId) => {
      const now = await instanceNow(ctx, j.botName, instanceId, j.fingerprint);
      if (!now) return undefined;
      seen.set(instanceId, now.item.revision);
      return now.state;
    },
    readRecord: async (id) => {
      const it = await ctx.backend.get(joinRecordKey(j.req.join_method, id));
      if (!it) return undefined;
      const v = JSON.parse(it.value) as JoinRecordValue;
      const holder = await instanceNow(ctx, v.bot, v.bot_instance_id, j.fingerprint);
      return {
        revision: it.revision,
        data: v.data,
        botName: v.bot,
        instanceId: v.bot_instance_id,
        holder: holder?.state,
      };
    },
    lockToken: async (reason) => {
      const name = await createLock(ctx, { join_token: j.tokenId }, reason);
      ctx.audit.emit({
        event: 'lock.created',
        success: true,
        bot_name: j.botName,
        token_id: j.tokenId,
        reason,
        resource: `lock/${name}`,
      });
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
  };
}

/** ServerJoinContext.updateTokenStatus: one conditional write, retried on what is stored now. */
async function writeTokenStatus(
  ctx: AuthContext,
  j: Join,
  seen: Map<string, number>,
  decide: (status: Readonly<Record<string, unknown>>) => Promise<TokenStatusUpdate>,
): Promise<void> {
  for (let i = 0; i < STATUS_RETRIES; i++) {
    seen.clear();
    const { item, token } = j.loaded;
    const { status: next, end = [] } = await decide(token.status ?? {});
    const value = JSON.stringify({ ...token, status: next });
    try {
      // one conditional write: the new status, the end of the instance the key is rebound away
      // from (never two instances for one key, not even for a moment) and the challenge's use
      // (a join refused before here wrote nothing)
      const ends: Array<{ op: 'delete'; key: string; revision: number }> = [];
      for (const instanceId of end) {
        const k = instanceKey(j.botName, instanceId);
        const revision = seen.get(instanceId) ?? (await ctx.backend.get(k))?.revision;
        if (revision !== undefined) ends.push({ op: 'delete', key: k, revision });
      }
      const ok = await ctx.backend.transact([
        { op: 'compareAndSwap', key: item.key, revision: item.revision, value, expires: item.expires },
        ...ends,
        ...(j.challenge?.ops() ?? []),
      ]);
      if (!ok) {
        await j.challenge?.refuseIfUsed(ctx.backend);
        throw new MwiError('COMPARE_FAILED', 'token or replaced instance changed');
      }
      j.challenge?.committed();
      j.loaded = {
        item: (await ctx.backend.get(item.key)) ?? item,
        token: { ...token, status: next },
        id: j.loaded.id,
      };
      for (const op of ends) {
        ctx.audit.emit({
          event: 'resource.deleted',
          success: true,
          bot_name: j.botName,
          resource: `bot_instance/${j.botName}/${op.key.split('/').pop()!}`,
          user: 'mwi',
          reason: 'replaced by a later join with the same bound key',
          ...j.audit,
        });
      }
      return;
    } catch (err) {
      if (!isMwiError(err, 'COMPARE_FAILED')) throw err;
      j.loaded = await loadToken(ctx, j.tokenId, j.req.join_method);
    }
  }
  throw new JoinRefusal('token status kept changing concurrently');
}
