import type { BotCredentialResponse } from '../api/wire.js';
import { sha256Hex, type ClientKey } from '../crypto/keys.js';
import { isMwiError, MwiError } from '../errors.js';
import type { InstanceState } from '../join/types.js';
import { key, type Item, type TxOp } from '../storage/backend.js';
import { activeLock, botAccess } from './access.js';
import type { Claims } from './claims.js';
import { INSTANCE_GRACE_MS, type AuthContext } from './context.js';
import { signBotIdentity } from './issue.js';
import { createLock } from './locks.js';
import type { BotInstance } from '../api/resources.js';

/**
 * Bot instances: created by a join at generation 1, continued by renewals and refresh joins one
 * generation at a time, each step one conditional write. The generation counter is the evidence
 * of a copied identity: a certificate older than the stored generation locks the instance.
 */

/** Storage key of a bot instance. */
export function instanceKey(botName: string, instanceId: string): string {
  return key('bot_instances', botName, instanceId);
}

export type BotClaims = Extract<Claims, { kind: 'bot' }>;

/** The caller's bot identity, or `code` for any other certificate (an output's, an admin's, none). */
export function requireBot(claims: Claims | undefined, code: 'RENEW_DENIED' | 'ACCESS_DENIED'): BotClaims {
  if (claims?.kind !== 'bot') {
    throw new MwiError(code, 'this certificate is not a bot identity that may renew or request certificates');
  }
  return claims;
}

/** Who made a request: recorded on every renewal, certificate and lock event (forensics). */
export interface RequestOrigin {
  remoteAddr: string;
  /** `sha256:<hex>` of the public key the request asks to certify, if it sent one. */
  keyFingerprint?: string | undefined;
}

export function originFields(o: RequestOrigin): Record<string, string> {
  return { remote_addr: o.remoteAddr, ...(o.keyFingerprint ? { public_key_fingerprint: o.keyFingerprint } : {}) };
}

/** `sha256:<hex>` of a client key's SPKI: how keys are named in the audit log and on instances. */
export function keyFingerprint(publicKey: ClientKey): string {
  return `sha256:${sha256Hex(publicKey.spki)}`;
}

/** The stored fingerprint of the key the instance's latest identity certifies, as `sha256:<hex>`. */
function fingerprintOf(instance: BotInstance): string {
  return `sha256:${instance.status.public_key_fingerprint}`;
}

/** What a join needs to know of an existing instance (see InstanceState), at `now`. */
export function instanceState(instance: BotInstance, now: number, fingerprint: string): InstanceState {
  const st = instance.status;
  return {
    live: Date.parse(st.credential_expires) > now,
    used: st.generation > 1 || st.generation_confirmed,
    sameKey: fingerprintOf(instance) === fingerprint,
    ...(st.ended ? { ended: true } : {}),
  };
}

/** What a join records of a new instance. */
export interface NewInstance {
  botName: string;
  /** The bot's `status.uid` now: if the bot is removed and added again, this instance is not the new bot's. */
  botUid: string | undefined;
  instanceId: string;
  joinMethod: string;
  tokenId: string;
  /** Verified attributes of the join (the method's verdict). */
  attributes: Record<string, unknown> | undefined;
  /** `sha256:<hex>` of the key its identity certifies. */
  keyFingerprint: string;
  /** Expiry of that identity. */
  credentialExpires: string;
}

/** The conditional-write op that creates an instance at generation 1; it fails if the id exists. */
export function createInstanceOp(ctx: AuthContext, n: NewInstance): TxOp {
  const at = new Date(ctx.now()).toISOString();
  const expires = Date.parse(n.credentialExpires) + INSTANCE_GRACE_MS;
  const instance: BotInstance = {
    kind: 'bot_instance',
    version: 'v1',
    metadata: { name: n.instanceId, expires: new Date(expires).toISOString() },
    spec: { bot_name: n.botName, instance_id: n.instanceId, ...(n.botUid ? { bot_uid: n.botUid } : {}) },
    status: {
      initial_authentication: {
        auth_at: at,
        join_method: n.joinMethod,
        join_token_name: n.tokenId,
        ...(n.attributes ? { metadata: n.attributes } : {}),
      },
      latest_authentication: { auth_at: at, join_method: n.joinMethod, generation: 1 },
      generation: 1,
      // confirmed by the instance's first request: until then a lost join answer may be retried
      generation_confirmed: false,
      public_key_fingerprint: n.keyFingerprint.slice('sha256:'.length),
      credential_expires: n.credentialExpires,
      latest_heartbeats: [],
    },
  };
  return { op: 'create', key: instanceKey(n.botName, n.instanceId), value: JSON.stringify(instance), expires };
}

/** Locks one bot instance: the response to a credential that was copied. */
async function lockInstance(ctx: AuthContext, c: BotClaims, reason: string, origin: RequestOrigin): Promise<void> {
  await createLock(ctx, { bot_instance_id: c.instance }, reason);
  ctx.audit.emit({
    event: 'instance.locked',
    success: true,
    bot_name: c.bot,
    bot_instance_id: c.instance,
    generation: c.generation,
    reason,
    ...originFields(origin),
  });
}

/** The caller's instance as stored. */
export interface CurrentInstance {
  item: Item;
  instance: BotInstance;
  /** The caller presents the previous generation to renew again with the same key: it lost a renewal's answer. */
  retry: boolean;
}

const COPIED = (instance: string) =>
  `bot instance ${instance} is locked: its identity was used from two places (generation counter), or the Auth ` +
  "Service's storage was restored from a backup";

/**
 * Loads the caller's bot instance and enforces locks and the generation counter: a certificate
 * older than the stored generation means a copy of the identity is in use elsewhere, unless it
 * is a retry of the renewal whose answer was lost: the one previous generation, the current one
 * never used, and the same public key the lost answer certified (`origin.keyFingerprint`; tbot
 * keeps its pending key until the answer is stored). Anything else locks the instance.
 */
export async function currentInstance(
  ctx: AuthContext,
  c: BotClaims,
  code: 'RENEW_DENIED' | 'ACCESS_DENIED',
  origin: RequestOrigin,
): Promise<CurrentInstance> {
  const early = activeLock(ctx, c.bot, c.instance);
  if (early) throw new MwiError('LOCKED', `bot ${c.bot} instance ${c.instance} is locked: ${early}`);
  const item = await ctx.backend.get(instanceKey(c.bot, c.instance));
  if (!item) throw new MwiError(code, 'the bot instance no longer exists (expired or removed); join again');
  const instance = JSON.parse(item.value) as BotInstance;
  // an instance of a removed bot stays dead when a bot of the same name is added again
  const bot = await ctx.bots.fresh(c.bot);
  if (!bot || bot.status?.uid !== instance.spec.bot_uid) {
    throw new MwiError(code, 'the bot this instance joined was removed; join again', {
      detail: `bot ${c.bot} was removed (and perhaps added again) since instance ${c.instance} joined`,
    });
  }
  const lock = activeLock(ctx, c.bot, c.instance, instance.status.initial_authentication.join_token_name);
  if (lock) throw new MwiError('LOCKED', `the join token of bot ${c.bot} instance ${c.instance} is locked: ${lock}`);
  const stored = instance.status.generation;
  if (c.generation === stored) return notEnded(c, { item, instance, retry: false });
  const unused = c.generation === stored - 1 && !instance.status.generation_confirmed;
  // a retry is idempotent: only the key the lost answer certified may ask again; another key (or
  // a certificate request) from the previous generation is a second holder of the identity that
  // renewed first, e.g. a copy of tbot's storage
  if (unused && origin.keyFingerprint !== undefined && origin.keyFingerprint === fingerprintOf(instance)) {
    return notEnded(c, { item, instance, retry: true });
  }
  // an ended instance still gets this check: a copy used after the end is evidence like any other
  const request = origin.keyFingerprint
    ? `this renewal is for ${origin.keyFingerprint}`
    : 'this request is not a retry of that renewal';
  const reason = unused
    ? `generation mismatch: certificate has ${c.generation}, server has ${stored}, issued to another key ` +
      `(${fingerprintOf(instance)}) and not used yet; ${request} (the identity was copied)`
    : `generation mismatch: certificate has ${c.generation}, server has ${stored} (the identity was copied)`;
  await lockInstance(ctx, c, reason, origin);
  throw new MwiError('LOCKED', COPIED(c.instance), { detail: reason });
}

/**
 * Refuses an ended instance (see BotInstance `status.ended`). Checked after the generation
 * counter, not before: a stale copy used after the end is still locked and audited as a copy.
 */
function notEnded(c: BotClaims, cur: CurrentInstance): CurrentInstance {
  const ended = cur.instance.status.ended;
  if (!ended) return cur;
  throw new MwiError(
    'LOCKED',
    `bot instance ${c.instance} was ended by a holder of its identity (${ended.reason}); if this tbot did not ` +
      'end it, a copy of its identity did: the instance is kept as evidence until it expires. Join again with ' +
      'a new token',
  );
}

/** Records that the current generation is in use, so the previous one can no longer renew. */
export async function confirmGeneration(ctx: AuthContext, cur: CurrentInstance): Promise<void> {
  if (cur.retry || cur.instance.status.generation_confirmed) return;
  const next: BotInstance = { ...cur.instance, status: { ...cur.instance.status, generation_confirmed: true } };
  try {
    const { key: k, revision, expires } = cur.item;
    await ctx.backend.compareAndSwap(k, revision, JSON.stringify(next), { expires });
  } catch (err) {
    // a concurrent renewal moved on; it decides from here
    if (!isMwiError(err, 'COMPARE_FAILED')) throw err;
  }
}

/**
 * What a continuation requires of the instance's first join (a renewal: a renewable method whose
 * token still allows it; a refresh join: the same method and token), checked before anything is
 * signed. Returns fields to add to the answer (e.g. that a key rotation is due).
 */
export type ContinueCheck = (
  first: BotInstance['status']['initial_authentication'],
) => Promise<Record<string, unknown>>;

/**
 * Signs the next identity of the caller's instance: generation + 1 (or the same generation again
 * for a retried renewal), written with one conditional write. Used by renewals and refresh joins.
 */
export async function refreshInstance(
  ctx: AuthContext,
  c: BotClaims,
  publicKey: ClientKey,
  ttlMs: number,
  /** Where the request came from; its key fingerprint is `publicKey`'s (see keyFingerprint). */
  origin: Required<RequestOrigin>,
  check: ContinueCheck,
): Promise<BotCredentialResponse> {
  const { item, instance, retry } = await currentInstance(ctx, c, 'RENEW_DENIED', origin);
  const hints = await check(instance.status.initial_authentication);
  const access = await botAccess(ctx, c.bot);
  const generation = retry ? instance.status.generation : instance.status.generation + 1;
  const ttl = Math.min(ttlMs, access.maxTtlMs);
  const { identity, tlsSerial } = await signBotIdentity(ctx, c.bot, c.instance, generation, publicKey, ttl);
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
  ctx.audit.emit({
    event: 'bot.renew',
    success: true,
    bot_name: c.bot,
    bot_instance_id: c.instance,
    generation,
    // the method of the instance's first join: renewals are counted by it (mwi_renewals_total)
    join_method: joinMethod,
    tls_serial: tlsSerial,
    ...originFields(origin),
    ...(retry ? { retried: true } : {}),
  });
  return { ...identity, ...hints };
}
