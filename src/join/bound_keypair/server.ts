import { parseWith } from '../../util/parse.js';
import { randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import { compactVerify } from 'jose';
import { assertCanonicalCompactJws } from '../../crypto/jws.js';
import { sha256Hex } from '../../crypto/keys.js';
import { parseSshPublicKey, sshPublicKeyToKeyObject } from '../../crypto/ssh.js';
import { MwiError } from '../../errors.js';
import { JoinRefusal, type ServerJoinContext, type ServerJoinMethod, type ServerJoinResult } from '../types.js';
import { boundKeypairSpec, type BKChallengePayload, type BKJoinPayload, type BKJoinResult, type BoundKeypairSpec, type BoundKeypairStatus } from './wire.js';

const CHALLENGE_TTL_S = 60;
const LIVE_MESSAGE =
  'the join was refused: another bot instance holds this bound keypair and its identity is still valid (only recovery.mode insecure allows concurrent instances, e.g. for a static key shared by CI runs)';
const LIMIT_MESSAGE =
  'the join was refused: this bound keypair has used all its recoveries; an administrator must raise recovery.limit on the token (tctl create -f --force)';

/** `type base64` without the comment: the form keys are compared and stored in. */
export function normalizeKey(line: string, field: string): string {
  const { type, blob } = parseSshPublicKey(line, field);
  sshPublicKeyToKeyObject(line, field); // only Ed25519 and P-256 can sign challenges
  return `${type} ${blob.toString('base64')}`;
}

function specOf(spec: Readonly<Record<string, unknown>>): BoundKeypairSpec {
  return boundKeypairSpec.parse(spec.bound_keypair ?? {});
}

function statusOf(status: Readonly<Record<string, unknown>>): BoundKeypairStatus {
  return (status.bound_keypair as BoundKeypairStatus | undefined) ?? {};
}

function rotationDue(spec: BoundKeypairSpec, status: BoundKeypairStatus, now: number): boolean {
  if (!spec.rotate_after || !status.bound_public_key) return false;
  const at = Date.parse(spec.rotate_after);
  // due once rotate_after has passed, unless a rotation already happened after it
  return at <= now && !(status.last_rotated_at && Date.parse(status.last_rotated_at) >= at);
}

/**
 * Verifies a compact JWS over exactly `claims` by `key`; only the key's own algorithm is accepted.
 * Its refusals carry the generic public message an unknown token gets: a caller without the key
 * must not learn from the answer whether the token it named exists (issue #9, finding 8).
 */
async function verifySignature(jws: unknown, claims: string, key: KeyObject, what: string): Promise<void> {
  if (typeof jws !== 'string' || jws.length > 4096) throw new JoinRefusal(`${what}: missing signature`);
  // one spelling per signature, as for platform tokens: nothing downstream may key on a variant
  try {
    assertCanonicalCompactJws(jws, 'payload.signature');
  } catch {
    throw new JoinRefusal(`${what}: signature is not a canonical compact JWS`);
  }
  const alg = key.asymmetricKeyType === 'ed25519' ? 'EdDSA' : 'ES256';
  let payload: Uint8Array;
  try {
    ({ payload } = await compactVerify(jws, key, { algorithms: [alg] }));
  } catch (err) {
    throw new JoinRefusal(`${what}: signature does not verify (${(err as { code?: string }).code ?? 'invalid'})`);
  }
  const got = Buffer.from(payload);
  const want = Buffer.from(claims);
  // the signed claims must be the ones this server issued, byte for byte (nonce included)
  if (got.length !== want.length || !timingSafeEqual(got, want)) throw new JoinRefusal(`${what}: signed claims differ from the challenge`);
}

export const boundKeypairServer: ServerJoinMethod = {
  name: 'bound_keypair',

  prepareToken(spec, now, previous) {
    const bk = parseWith(boundKeypairSpec, spec.bound_keypair ?? {}, { code: 'BAD_REQUEST', path: ['spec', 'bound_keypair'] });
    const onboarding = { ...bk.onboarding };
    let shownOnce: Record<string, string> | undefined;
    if (onboarding.initial_public_key) onboarding.initial_public_key = normalizeKey(onboarding.initial_public_key, 'spec.bound_keypair.onboarding.initial_public_key');
    const kept = previous ? specOf(previous).onboarding.registration_secret_hash : undefined;
    if (!onboarding.registration_secret && !onboarding.initial_public_key && !onboarding.registration_secret_hash && kept) {
      // replacing the token (e.g. to raise recovery.limit) keeps its registration secret
      onboarding.registration_secret_hash = kept;
    }
    if (onboarding.registration_secret) {
      onboarding.registration_secret_hash = sha256Hex(onboarding.registration_secret);
      delete onboarding.registration_secret;
    } else if (!onboarding.initial_public_key && !onboarding.registration_secret_hash) {
      // neither given: generate a secret, shown once, stored as a hash
      const secret = randomBytes(16).toString('hex');
      onboarding.registration_secret_hash = sha256Hex(secret);
      shownOnce = { registration_secret: secret };
    }
    if (!previous && onboarding.must_register_before && Date.parse(onboarding.must_register_before) <= now) {
      throw new MwiError('BAD_REQUEST', 'already in the past', { field: 'spec.bound_keypair.onboarding.must_register_before' });
    }
    return { spec: { ...spec, bound_keypair: { ...bk, onboarding } }, ...(shownOnce ? { shownOnce } : {}) };
  },

  renewHints(token, now) {
    return rotationDue(specOf(token.spec), statusOf(token.status), now) ? { rejoin_due: true } : {};
  },

  renewRefusal(token, instanceId) {
    // one instance per key (standard and relaxed): only the instance the key is bound to renews;
    // insecure mode lets every holder of a shared static key have its own instance
    if (specOf(token.spec).recovery.mode === 'insecure') return undefined;
    const bound = statusOf(token.status).bound_bot_instance_id;
    return bound && bound !== instanceId ? `the bound keypair is bound to instance ${bound} now, not ${instanceId} (replaced by a later join)` : undefined;
  },

  async challenge(ctx) {
    const spec = specOf(ctx.token.spec);
    const status = statusOf(ctx.token.status);
    const keys = (ctx.payload as Partial<BKChallengePayload> | undefined)?.public_keys;
    if (!Array.isArray(keys) || keys.length === 0 || keys.length > 8) throw new MwiError('BAD_REQUEST', 'expected 1 to 8 public keys', { field: 'payload.public_keys' });
    const offered = keys.map((k, i) => normalizeKey(String(k), `payload.public_keys[${i}]`));
    // which key must sign: the bound one, else the pre-registered one, else (registration) tbot's first
    const expected = status.bound_public_key ?? spec.onboarding.initial_public_key ?? offered[0]!;
    // refused like an unknown token (the caller gets a decoy challenge): which key a token is
    // bound to is not told to a caller who has not proved it holds it
    if (!offered.includes(expected)) throw new JoinRefusal('none of the offered keys is the key bound to this token');
    const nonce = randomBytes(32).toString('base64url');
    const claims = JSON.stringify({
      iss: ctx.clusterName,
      aud: ctx.clusterName,
      sub: `sha256:${sha256Hex(expected)}`,
      nonce,
      iat: Math.floor(ctx.now / 1000),
      exp: Math.floor(ctx.now / 1000) + CHALLENGE_TTL_S,
    });
    const rotate = rotationDue(spec, status, ctx.now);
    return { send: { claims, public_key: expected, rotate }, store: { claims, public_key: expected, rotate } };
  },

  async verify(ctx: ServerJoinContext): Promise<ServerJoinResult> {
    const spec = specOf(ctx.token.spec);
    const p = (ctx.request.payload ?? {}) as Partial<BKJoinPayload>;
    const ch = ctx.challenge;
    if (!ch || typeof ch.claims !== 'string' || typeof ch.public_key !== 'string') throw new JoinRefusal('no valid challenge for this join');
    const claims = JSON.parse(ch.claims) as { exp: number };
    if (claims.exp * 1000 <= ctx.now) throw new JoinRefusal('challenge expired');
    const key = ch.public_key;
    // the key is read from the challenge this server stored, never from the request
    await verifySignature(p.signature, ch.claims, sshPublicKeyToKeyObject(key, 'public_key'), 'bound key');

    let fresh: string | undefined;
    if (ch.rotate === true) {
      if (typeof p.new_public_key !== 'string') throw new JoinRefusal('rotation due but no new key sent', 'the join was refused: a key rotation is due (rotate_after) and tbot sent no new key');
      fresh = normalizeKey(p.new_public_key, 'payload.new_public_key');
      if (fresh === key) throw new JoinRefusal('rotation to the same key');
      await verifySignature(p.new_signature, ch.claims, sshPublicKeyToKeyObject(fresh, 'payload.new_public_key'), 'new key');
    }
    // the proof holds: from here on this challenge is spent, whatever the outcome
    await ctx.consumeChallenge();

    let refreshInstance: string | undefined;
    let next: BoundKeypairStatus = {};
    const insecure = spec.recovery.mode === 'insecure';
    const now = new Date(ctx.now).toISOString();
    // every rule below is decided on the status as stored and written with one conditional write
    await ctx.updateTokenStatus(async (raw) => {
      const status = statusOf(raw);
      next = { ...status };
      refreshInstance = undefined;
      // the instance this join replaces, ended in the same write that rebinds the key
      let replaced: string | undefined;
      if (status.bound_public_key && status.bound_public_key !== key) throw new JoinRefusal('the key is no longer the bound key (rotated meanwhile)');
      if (!status.bound_public_key) {
        // first join: registration secret or pre-registered key
        const ob = spec.onboarding;
        if (ob.must_register_before && Date.parse(ob.must_register_before) <= ctx.now) throw new JoinRefusal('registration window closed (must_register_before passed)');
        if (ob.initial_public_key) {
          if (key !== ob.initial_public_key) throw new JoinRefusal('key is not the pre-registered initial_public_key');
        } else {
          const hash = ob.registration_secret_hash;
          if (!hash || typeof p.registration_secret !== 'string') throw new JoinRefusal('registration secret missing');
          if (!timingSafeEqual(Buffer.from(sha256Hex(p.registration_secret), 'hex'), Buffer.from(hash, 'hex'))) throw new JoinRefusal('registration secret does not match');
        }
        next.registered_at = now;
        next.recovery_count = 1;
        next.previous_recovery_count = 0;
        next.bound_bot_instance_id = ctx.newInstanceId;
      } else if (ctx.caller && ctx.caller.bot === ctx.token.botName && ctx.caller.instance === status.bound_bot_instance_id) {
        // refresh: the bound instance with a valid identity (its generation is checked by the caller)
        refreshInstance = ctx.caller.instance;
      } else {
        const mode = spec.recovery.mode;
        const bound = status.bound_bot_instance_id ? await ctx.instanceStatus(status.bound_bot_instance_id) : undefined;
        let retry = false;
        if (mode !== 'insecure') {
          // the join state proves this is the tbot that joined last; checked only after the key
          // signature succeeded, so nobody without the key can trigger the lock-out below
          const doc = typeof p.join_state === 'string' ? await ctx.verifyState(p.join_state) : undefined;
          // the first join's answer was lost: tbot holds the key but never got a join state
          // (a retry is idempotent: it asks for the same key the lost answer certified, which tbot
          // keeps pending until it stores the answer)
          const firstRetry = !doc && status.recovery_count === 1 && status.previous_recovery_count === 0 && bound !== undefined && !bound.used && bound.sameKey;
          if (firstRetry) retry = true;
          else if (!doc) {
            if (bound?.live) throw new JoinRefusal(`no join state, and the key is bound to live instance ${status.bound_bot_instance_id}`, LIVE_MESSAGE);
            throw new JoinRefusal(
              'join state document missing or invalid',
              'the join was refused: the join state from the previous join is missing or invalid (tbot storage lost? a static key shared by CI runs needs recovery.mode insecure)',
            );
          }
          const matches = (instance: string | undefined, seq: number | undefined) => doc !== undefined && doc.token === ctx.token.id && doc.bot_instance_id === instance && doc.recovery_sequence === seq;
          // the join before the latest one, while the latest one's instance was never used: tbot
          // lost that join's answer (a crash) and asks again; anything else is a second copy
          const lostAnswer = !matches(status.bound_bot_instance_id, status.recovery_count) && matches(status.previous_bot_instance_id, status.previous_recovery_count) && !bound?.used;
          retry ||= lostAnswer && (bound === undefined || bound.sameKey);
          if (!retry && !matches(status.bound_bot_instance_id, status.recovery_count)) {
            const reason = lostAnswer
              ? `a retry of the join before instance ${status.bound_bot_instance_id} (unused) asks for another key than that join certified (the keypair and join state were used from two places)`
              : `join state mismatch: document has instance ${String(doc?.bot_instance_id)} sequence ${String(doc?.recovery_sequence)}, token has ${status.bound_bot_instance_id} ${status.recovery_count} (the keypair was used from two places)`;
            await ctx.lockToken(reason);
            throw new JoinRefusal(reason, 'the join was refused and the token locked: the keypair was used from two places');
          }
          if (!retry && bound?.live) {
            throw new JoinRefusal(`the key is bound to instance ${status.bound_bot_instance_id}, which still holds a valid identity (a second copy of the key?)`, LIVE_MESSAGE);
          }
        }
        const count = status.recovery_count ?? 0;
        // one instance per key: the instance the key was bound to ends when it is rebound (the
        // retry of a lost join replaces an unused instance, a recovery an expired one)
        if (!insecure) replaced = status.bound_bot_instance_id;
        if (retry) {
          // the lost join already counted; its unused instance is replaced
          next.bound_bot_instance_id = ctx.newInstanceId;
        } else {
          if (mode === 'standard' && count >= spec.recovery.limit) throw new JoinRefusal(`recovery limit reached (${count}/${spec.recovery.limit})`, LIMIT_MESSAGE);
          next.previous_bot_instance_id = status.bound_bot_instance_id;
          next.previous_recovery_count = count;
          next.recovery_count = count + 1;
          next.last_recovered_at = now;
          next.bound_bot_instance_id = ctx.newInstanceId;
        }
      }
      next.bound_public_key = fresh ?? key;
      if (fresh) next.last_rotated_at = now;
      return { status: { ...raw, bound_keypair: next }, ...(replaced ? { end: [replaced] } : {}) };
    });
    const rotated = fresh !== undefined;

    const instance = refreshInstance ?? ctx.newInstanceId;
    const joinState = await ctx.signState({ token: ctx.token.id, bot_instance_id: next.bound_bot_instance_id ?? instance, recovery_sequence: next.recovery_count ?? 0 });
    const result: BKJoinResult = {
      join_state: joinState,
      bound_public_key: next.bound_public_key!,
      recovery_count: next.recovery_count ?? 0,
      recovery_limit: spec.recovery.limit,
      recovery_mode: spec.recovery.mode,
      rotated,
    };
    return {
      ...(refreshInstance ? { refreshInstance } : {}),
      attributes: { bound_public_key_fingerprint: `sha256:${sha256Hex(next.bound_public_key!)}`, recovery_count: result.recovery_count, recovery_limit: result.recovery_limit, recovery_mode: result.recovery_mode, ...(rotated ? { rotated: true } : {}) },
      methodData: result as unknown as Record<string, unknown>,
    };
  },
};
