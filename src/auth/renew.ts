import { randomUUID } from 'node:crypto';
import type { CertsRequest, CertsResponse, HeartbeatRequest, IdentityResponse, RenewRequest } from '../api/wire.js';
import { parseClientKey, sha256Hex, type ClientKey } from '../crypto/keys.js';
import { isMwiError, MwiError } from '../errors.js';
import type { Item } from '../storage/backend.js';
import { key } from '../storage/backend.js';
import { activeLock, botAccess, grantedTtlMs } from './access.js';
import type { Claims } from './claims.js';
import { DEFAULT_TTL_MS, INSTANCE_GRACE_MS, type AuthContext } from './context.js';
import { issueBotIdentity, issueOutputCerts } from './issue.js';
import { instanceKey } from './instances.js';
import type { BotInstance, Lock, StoredToken } from './resources.js';
import { SERVER_METHODS } from '../join/servers.js';
import { joinMethodInfo } from '../join/catalog.js';
import { tokenKey } from './tokens.js';
import { stripUnsafe } from '../util/text.js';

type BotClaims = Extract<Claims, { kind: 'bot' }>;

function requireBot(claims: Claims | undefined, code: 'RENEW_DENIED' | 'ACCESS_DENIED'): BotClaims {
  if (claims?.kind !== 'bot') throw new MwiError(code, 'this certificate is not a bot identity that may renew or request certificates');
  return claims;
}

/** Locks one bot instance: the response to a credential that was copied. */
async function lockInstance(ctx: AuthContext, c: BotClaims, reason: string): Promise<void> {
  const name = randomUUID();
  const lock: Lock = {
    kind: 'lock',
    version: 'v2',
    metadata: { name },
    spec: { target: { bot_instance_id: c.instance }, message: reason, created_by: 'mwi', created: new Date(ctx.now()).toISOString() },
  };
  await ctx.backend.put(key('locks', name), JSON.stringify(lock));
  ctx.audit.emit({ event: 'instance.locked', success: true, bot_name: c.bot, bot_instance_id: c.instance, generation: c.generation, reason });
}

interface Current {
  item: Item;
  instance: BotInstance;
  /** The caller presents the previous generation, allowed once: it lost a renewal's answer. */
  retry: boolean;
}

/**
 * Loads the caller's bot instance and enforces locks and the generation counter: a certificate
 * older than the stored generation means a copy of the identity is in use elsewhere, unless it
 * is the one previous generation and the current one was never used (a lost renewal answer).
 */
async function currentInstance(ctx: AuthContext, c: BotClaims, code: 'RENEW_DENIED' | 'ACCESS_DENIED'): Promise<Current> {
  const early = activeLock(ctx, c.bot, c.instance);
  if (early) throw new MwiError('LOCKED', `bot ${c.bot} instance ${c.instance} is locked: ${early}`);
  const item = await ctx.backend.get(instanceKey(c.bot, c.instance));
  if (!item) throw new MwiError(code, 'the bot instance no longer exists (expired or removed); join again');
  const instance = JSON.parse(item.value) as BotInstance;
  const lock = activeLock(ctx, c.bot, c.instance, instance.status.initial_authentication.join_token_name);
  if (lock) throw new MwiError('LOCKED', `the join token of bot ${c.bot} instance ${c.instance} is locked: ${lock}`);
  const stored = instance.status.generation;
  if (c.generation === stored) return { item, instance, retry: false };
  if (c.generation === stored - 1 && !instance.status.generation_confirmed) return { item, instance, retry: true };
  const reason = `generation mismatch: certificate has ${c.generation}, server has ${stored} (the identity was copied)`;
  await lockInstance(ctx, c, reason);
  throw new MwiError('LOCKED', `bot instance ${c.instance} is locked: its identity was used from two places (generation counter)`, { detail: reason });
}

/** Records that the current generation is in use, so the previous one can no longer renew. */
async function confirmGeneration(ctx: AuthContext, cur: Current): Promise<void> {
  if (cur.retry || cur.instance.status.generation_confirmed) return;
  const next: BotInstance = { ...cur.instance, status: { ...cur.instance.status, generation_confirmed: true } };
  try {
    await ctx.backend.compareAndSwap(cur.item.key, cur.item.revision, JSON.stringify(next), { expires: cur.item.expires });
  } catch (err) {
    // a concurrent renewal moved on; it decides from here
    if (!isMwiError(err, 'COMPARE_FAILED')) throw err;
  }
}

/**
 * Signs the next identity of an existing instance: generation + 1 (or the same generation again
 * for a retried renewal), written with one conditional write. Used by renewals and refresh joins.
 */
export async function refreshInstance(
  ctx: AuthContext,
  c: BotClaims,
  publicKey: ClientKey,
  ttlMs: number,
  /** A re-join that continues this instance: it must come from the same method and token. */
  rejoin?: { joinMethod: string; tokenId: string },
): Promise<IdentityResponse & { joinMethod: string; tokenId: string }> {
  const { item, instance, retry } = await currentInstance(ctx, c, 'RENEW_DENIED');
  const first = instance.status.initial_authentication;
  if (!rejoin && !joinMethodInfo(first.join_method)?.renewable) {
    // platform-signed identities are not renewable: each one is a fresh join with a fresh document
    throw new MwiError('RENEW_DENIED', `identities from join method ${first.join_method} do not renew; join again`);
  }
  if (rejoin && (rejoin.joinMethod !== first.join_method || rejoin.tokenId !== first.join_token_name)) {
    throw new MwiError('RENEW_DENIED', 'this identity came from another join method or token; join without it');
  }
  const access = await botAccess(ctx, c.bot);
  const generation = retry ? instance.status.generation : instance.status.generation + 1;
  const identity = await issueBotIdentity(ctx, c.bot, c.instance, generation, publicKey, Math.min(ttlMs, access.maxTtlMs));
  const expires = Date.parse(identity.expires) + INSTANCE_GRACE_MS;
  const joinMethod = instance.status.initial_authentication.join_method;
  const next: BotInstance = {
    ...instance,
    metadata: { ...instance.metadata, expires: new Date(expires).toISOString() },
    status: {
      ...instance.status,
      generation,
      generation_confirmed: false,
      credential_expires: identity.expires,
      latest_authentication: { auth_at: new Date(ctx.now()).toISOString(), join_method: joinMethod, generation },
      public_key_fingerprint: sha256Hex(publicKey.spki),
    },
  };
  try {
    await ctx.backend.compareAndSwap(item.key, item.revision, JSON.stringify(next), { expires });
  } catch (err) {
    if (!isMwiError(err, 'COMPARE_FAILED')) throw err;
    // two renewals raced with the same generation: only a copy of the identity can do that
    const reason = 'concurrent renewals with the same generation (the identity was copied)';
    await lockInstance(ctx, c, reason);
    throw new MwiError('LOCKED', `bot instance ${c.instance} is locked: its identity was used from two places (generation counter)`, { detail: reason });
  }
  ctx.audit.emit({ event: 'bot.renew', success: true, bot_name: c.bot, bot_instance_id: c.instance, generation, ...(retry ? { retried: true } : {}) });
  return { ...identity, joinMethod, tokenId: instance.status.initial_authentication.join_token_name };
}

/** POST /v1/renew: new internal identity, generation + 1, one conditional write. */
export async function handleRenew(ctx: AuthContext, claims: Claims | undefined, body: unknown, remoteAddr: string): Promise<IdentityResponse> {
  const c = requireBot(claims, 'RENEW_DENIED');
  const req = (body ?? {}) as Partial<RenewRequest>;
  try {
    const publicKey = parseClientKey(req.public_key, 'public_key');
    const { joinMethod, tokenId, ...identity } = await refreshInstance(ctx, c, publicKey, grantedTtlMs(req.ttl_seconds, Infinity, DEFAULT_TTL_MS));
    // a method may ask for a refresh join (bound keypair: a key rotation is due)
    const hints = SERVER_METHODS.get(joinMethod)?.renewHints;
    if (hints) {
      const t = await ctx.backend.get(tokenKey(tokenId));
      if (t) {
        const token = JSON.parse(t.value) as StoredToken;
        Object.assign(identity, hints({ id: tokenId, botName: c.bot, spec: token.spec, status: (token.status ?? {}) as Record<string, unknown> }, ctx.now()));
      }
    }
    return identity;
  } catch (err) {
    ctx.audit.emit({ event: 'bot.renew', success: false, bot_name: c.bot, bot_instance_id: c.instance, generation: c.generation, remote_addr: remoteAddr, reason: isMwiError(err) ? err.detail ?? err.message : String(err) });
    throw err;
  }
}

/** POST /v1/certs: short-lived credentials for an output, for a key tbot generated. */
export async function handleCerts(ctx: AuthContext, claims: Claims | undefined, body: unknown, remoteAddr: string): Promise<CertsResponse> {
  const c = requireBot(claims, 'ACCESS_DENIED');
  const req = (body ?? {}) as Partial<CertsRequest>;
  try {
    const publicKey = parseClientKey(req.public_key, 'public_key');
    await confirmGeneration(ctx, await currentInstance(ctx, c, 'ACCESS_DENIED'));
    const access = await botAccess(ctx, c.bot);
    return await issueOutputCerts(ctx, access, c.instance, publicKey, grantedTtlMs(req.ttl_seconds, access.maxTtlMs, DEFAULT_TTL_MS));
  } catch (err) {
    ctx.audit.emit({ event: 'bot.certs', success: false, bot_name: c.bot, bot_instance_id: c.instance, remote_addr: remoteAddr, reason: isMwiError(err) ? err.detail ?? err.message : String(err) });
    throw err;
  }
}

const HEARTBEATS_KEPT = 10;

/** A self-reported heartbeat field: control and bidi characters removed, so no reader's terminal acts on them (issue #9, finding 9). */
function str(v: unknown, max = 256): string {
  return typeof v === 'string' ? stripUnsafe(v).slice(0, max) : '';
}

/** POST /v1/heartbeat: records tbot's self-reported host details on its instance. */
export async function handleHeartbeat(ctx: AuthContext, claims: Claims | undefined, body: unknown): Promise<{ ok: true }> {
  const c = requireBot(claims, 'ACCESS_DENIED');
  const hb = (body ?? {}) as Partial<HeartbeatRequest>;
  const entry = {
    recorded_at: new Date(ctx.now()).toISOString(),
    hostname: str(hb.hostname),
    os: str(hb.os, 64),
    version: str(hb.version, 64),
    uptime_seconds: typeof hb.uptime_seconds === 'number' ? Math.max(0, Math.floor(hb.uptime_seconds)) : 0,
    one_shot: hb.one_shot === true,
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    const { item, instance, retry } = await currentInstance(ctx, c, 'ACCESS_DENIED');
    if (!retry) instance.status.generation_confirmed = true;
    instance.status.latest_heartbeats = [entry, ...instance.status.latest_heartbeats].slice(0, HEARTBEATS_KEPT);
    try {
      await ctx.backend.compareAndSwap(item.key, item.revision, JSON.stringify(instance), { expires: item.expires });
      return { ok: true };
    } catch (err) {
      if (!isMwiError(err, 'COMPARE_FAILED')) throw err;
    }
  }
  throw new MwiError('COMPARE_FAILED', 'the bot instance changed concurrently; try again');
}
