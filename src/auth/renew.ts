import { randomUUID } from 'node:crypto';
import type { CertsRequest, CertsResponse, HeartbeatRequest, IdentityResponse, RenewRequest } from '../api/wire.js';
import { parseClientKey, sha256Hex, type ClientKey } from '../crypto/keys.js';
import { failureReason, isMwiError, MwiError } from '../errors.js';
import type { Item } from '../storage/backend.js';
import { key } from '../storage/backend.js';
import { activeLock, botAccess, grantedTtlMs } from './access.js';
import type { Claims } from './claims.js';
import { DEFAULT_TTL_MS, INSTANCE_GRACE_MS, type AuthContext } from './context.js';
import { signBotIdentity, signOutputCerts } from './issue.js';
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

/** Who made a request: recorded on every renewal, certificate and lock event (forensics). */
export interface RequestOrigin {
  remoteAddr: string;
  /** `sha256:<hex>` of the public key the request asks to certify, if it sent one. */
  keyFingerprint?: string | undefined;
}

function originFields(o: RequestOrigin): Record<string, string> {
  return { remote_addr: o.remoteAddr, ...(o.keyFingerprint ? { public_key_fingerprint: o.keyFingerprint } : {}) };
}

/** Locks one bot instance: the response to a credential that was copied. */
async function lockInstance(ctx: AuthContext, c: BotClaims, reason: string, origin: RequestOrigin): Promise<void> {
  const name = randomUUID();
  const lock: Lock = {
    kind: 'lock',
    version: 'v2',
    metadata: { name },
    spec: { target: { bot_instance_id: c.instance }, message: reason, created_by: 'mwi', created: new Date(ctx.now()).toISOString() },
  };
  await ctx.backend.put(key('locks', name), JSON.stringify(lock));
  ctx.audit.emit({ event: 'instance.locked', success: true, bot_name: c.bot, bot_instance_id: c.instance, generation: c.generation, reason, ...originFields(origin) });
}

interface Current {
  item: Item;
  instance: BotInstance;
  /** The caller presents the previous generation to renew again with the same key: it lost a renewal's answer. */
  retry: boolean;
}

const COPIED = (instance: string) => `bot instance ${instance} is locked: its identity was used from two places (generation counter)`;

/**
 * Loads the caller's bot instance and enforces locks and the generation counter: a certificate
 * older than the stored generation means a copy of the identity is in use elsewhere, unless it
 * is a retry of the renewal whose answer was lost: the one previous generation, the current one
 * never used, and the same public key the lost answer certified (`origin.keyFingerprint`; tbot
 * keeps its pending key until the answer is stored). Anything else locks the instance.
 */
async function currentInstance(ctx: AuthContext, c: BotClaims, code: 'RENEW_DENIED' | 'ACCESS_DENIED', origin: RequestOrigin): Promise<Current> {
  const early = activeLock(ctx, c.bot, c.instance);
  if (early) throw new MwiError('LOCKED', `bot ${c.bot} instance ${c.instance} is locked: ${early}`);
  const item = await ctx.backend.get(instanceKey(c.bot, c.instance));
  if (!item) throw new MwiError(code, 'the bot instance no longer exists (expired or removed); join again');
  const instance = JSON.parse(item.value) as BotInstance;
  // an instance of a removed bot stays dead when a bot of the same name is added again
  const bot = await ctx.bots.fresh(c.bot);
  if (!bot || bot.status?.uid !== instance.spec.bot_uid) {
    throw new MwiError(code, 'the bot this instance joined was removed; join again', { detail: `bot ${c.bot} was removed (and perhaps added again) since instance ${c.instance} joined` });
  }
  const lock = activeLock(ctx, c.bot, c.instance, instance.status.initial_authentication.join_token_name);
  if (lock) throw new MwiError('LOCKED', `the join token of bot ${c.bot} instance ${c.instance} is locked: ${lock}`);
  const stored = instance.status.generation;
  if (c.generation === stored) return { item, instance, retry: false };
  const unused = c.generation === stored - 1 && !instance.status.generation_confirmed;
  // a retry is idempotent: only the key the lost answer certified may ask again; another key (or
  // a certificate request) from the previous generation is a second holder of the identity that
  // renewed first, e.g. a copy of tbot's storage
  if (unused && origin.keyFingerprint !== undefined && origin.keyFingerprint === fingerprintOf(instance)) return { item, instance, retry: true };
  const reason = unused
    ? `generation mismatch: certificate has ${c.generation}, server has ${stored}, issued to another key (${fingerprintOf(instance)}) and not used yet; ${origin.keyFingerprint ? `this renewal is for ${origin.keyFingerprint}` : 'this request is not a retry of that renewal'} (the identity was copied)`
    : `generation mismatch: certificate has ${c.generation}, server has ${stored} (the identity was copied)`;
  await lockInstance(ctx, c, reason, origin);
  throw new MwiError('LOCKED', COPIED(c.instance), { detail: reason });
}

/** The stored fingerprint of the key the instance's latest identity certifies, as `sha256:<hex>`. */
function fingerprintOf(instance: BotInstance): string {
  return `sha256:${instance.status.public_key_fingerprint}`;
}

/** `sha256:<hex>` of a client key's SPKI: how keys are named in the audit log and on instances. */
export function keyFingerprint(publicKey: ClientKey): string {
  return `sha256:${sha256Hex(publicKey.spki)}`;
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
 * Renewals also get the join method's hints (e.g. bound keypair: a key rotation is due).
 */
export async function refreshInstance(
  ctx: AuthContext,
  c: BotClaims,
  publicKey: ClientKey,
  ttlMs: number,
  /** Where the request came from; its key fingerprint is `publicKey`'s (see keyFingerprint). */
  origin: Required<RequestOrigin>,
  /** A re-join that continues this instance: it must come from the same method and token. */
  rejoin?: { joinMethod: string; tokenId: string },
): Promise<IdentityResponse & { joinMethod: string; tokenId: string }> {
  const { item, instance, retry } = await currentInstance(ctx, c, 'RENEW_DENIED', origin);
  const first = instance.status.initial_authentication;
  if (!rejoin && !joinMethodInfo(first.join_method)?.renewable) {
    // platform-signed identities are not renewable: each one is a fresh join with a fresh document
    throw new MwiError('RENEW_DENIED', `identities from join method ${first.join_method} do not renew; join again`);
  }
  if (rejoin && (rejoin.joinMethod !== first.join_method || rejoin.tokenId !== first.join_token_name)) {
    throw new MwiError('RENEW_DENIED', 'this identity came from another join method or token; join without it');
  }
  const hints = rejoin ? {} : await methodChecks(ctx, c, first.join_method, first.join_token_name);
  const access = await botAccess(ctx, c.bot);
  const generation = retry ? instance.status.generation : instance.status.generation + 1;
  const { identity, tlsSerial } = await signBotIdentity(ctx, c.bot, c.instance, generation, publicKey, Math.min(ttlMs, access.maxTtlMs));
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
      public_key_fingerprint: origin.keyFingerprint.slice('sha256:'.length),
    },
  };
  try {
    await ctx.backend.compareAndSwap(item.key, item.revision, JSON.stringify(next), { expires });
  } catch (err) {
    if (!isMwiError(err, 'COMPARE_FAILED')) throw err;
    // two renewals raced with the same generation: only a copy of the identity can do that
    const reason = 'concurrent renewals with the same generation (the identity was copied)';
    await lockInstance(ctx, c, reason, origin);
    throw new MwiError('LOCKED', COPIED(c.instance), { detail: reason });
  }
  ctx.audit.emit({ event: 'bot.renew', success: true, bot_name: c.bot, bot_instance_id: c.instance, generation, tls_serial: tlsSerial, ...originFields(origin), ...(retry ? { retried: true } : {}) });
  return { ...identity, ...hints, joinMethod, tokenId: instance.status.initial_authentication.join_token_name };
}

/**
 * What the instance's join method says about a renewal, from its token as stored: a refusal
 * (bound keypair: the key was rebound to a later instance) or hints for the answer.
 */
async function methodChecks(ctx: AuthContext, c: BotClaims, joinMethod: string, tokenId: string): Promise<Record<string, unknown>> {
  const method = SERVER_METHODS.get(joinMethod);
  if (!method?.renewHints && !method?.renewRefusal) return {};
  const t = await ctx.backend.get(tokenKey(tokenId));
  if (!t) return {};
  const token = JSON.parse(t.value) as StoredToken;
  const view = { id: tokenId, botName: c.bot, spec: token.spec, status: (token.status ?? {}) as Record<string, unknown> };
  const refusal = method.renewRefusal?.(view, c.instance);
  if (refusal) throw new MwiError('RENEW_DENIED', 'this bot instance was replaced by a later join and can no longer renew', { detail: refusal });
  return method.renewHints?.(view, ctx.now()) ?? {};
}

/** POST /v1/renew: new internal identity, generation + 1, one conditional write. */
export async function handleRenew(ctx: AuthContext, claims: Claims | undefined, body: unknown, remoteAddr: string): Promise<IdentityResponse> {
  const c = requireBot(claims, 'RENEW_DENIED');
  const req = (body ?? {}) as Partial<RenewRequest>;
  let fingerprint: string | undefined;
  try {
    const publicKey = parseClientKey(req.public_key, 'public_key');
    fingerprint = keyFingerprint(publicKey);
    const { joinMethod: _m, tokenId: _t, ...identity } = await refreshInstance(ctx, c, publicKey, grantedTtlMs(req.ttl_seconds, Infinity, DEFAULT_TTL_MS), { remoteAddr, keyFingerprint: fingerprint });
    return identity;
  } catch (err) {
    ctx.audit.emit({
      event: 'bot.renew',
      success: false,
      bot_name: c.bot,
      bot_instance_id: c.instance,
      generation: c.generation,
      ...originFields({ remoteAddr, keyFingerprint: fingerprint }),
      reason: failureReason(err),
    });
    throw err;
  }
}

/** POST /v1/certs: short-lived credentials for an output, for a key tbot generated; audited with serials. */
export async function handleCerts(ctx: AuthContext, claims: Claims | undefined, body: unknown, remoteAddr: string): Promise<CertsResponse> {
  const c = requireBot(claims, 'ACCESS_DENIED');
  const req = (body ?? {}) as Partial<CertsRequest>;
  let fingerprint: string | undefined;
  try {
    const publicKey = parseClientKey(req.public_key, 'public_key');
    fingerprint = keyFingerprint(publicKey);
    // a certificate request is never a renewal retry: no key is offered for that check
    await confirmGeneration(ctx, await currentInstance(ctx, c, 'ACCESS_DENIED', { remoteAddr }));
    const access = await botAccess(ctx, c.bot);
    const ttlMs = grantedTtlMs(req.ttl_seconds, access.maxTtlMs, DEFAULT_TTL_MS);
    const issued = await signOutputCerts(ctx, access, c.instance, publicKey, ttlMs);
    const { certs } = issued;
    // what was issued, to match a certificate later seen by sshd or a TLS server
    ctx.audit.emit({
      event: 'bot.certs',
      success: true,
      bot_name: c.bot,
      bot_instance_id: c.instance,
      generation: c.generation,
      ...originFields({ remoteAddr, keyFingerprint: fingerprint }),
      tls_serial: issued.tlsSerial,
      ssh_serial: issued.sshSerial,
      logins: certs.logins,
      ttl_seconds: Math.round(ttlMs / 1000),
      expires: certs.expires,
    });
    return certs;
  } catch (err) {
    ctx.audit.emit({
      event: 'bot.certs',
      success: false,
      bot_name: c.bot,
      bot_instance_id: c.instance,
      ...originFields({ remoteAddr, keyFingerprint: fingerprint }),
      reason: failureReason(err),
    });
    throw err;
  }
}

const HEARTBEATS_KEPT = 10;

/** A self-reported heartbeat field: control and bidi characters removed, so no reader's terminal acts on them (issue #9, finding 9). */
function str(v: unknown, max = 256): string {
  return typeof v === 'string' ? stripUnsafe(v).slice(0, max) : '';
}

/** POST /v1/heartbeat: records tbot's self-reported host details on its instance. */
export async function handleHeartbeat(ctx: AuthContext, claims: Claims | undefined, body: unknown, remoteAddr = ''): Promise<{ ok: true }> {
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
    const { item, instance, retry } = await currentInstance(ctx, c, 'ACCESS_DENIED', { remoteAddr });
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
