import { parseWith } from '../../util/parse.js';
import { randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import { compactVerify } from 'jose';
import { assertCanonicalCompactJws } from '../../crypto/jws.js';
import { sha256Hex } from '../../crypto/keys.js';
import { parseSshPublicKey, sshPublicKeyToKeyObject } from '../../crypto/ssh.js';
import { MwiError } from '../../errors.js';
import {
  JoinRefusal,
  type JoinHandler,
  type JoinVerdict,
  type ServerJoinContext,
  type ServerJoinMethod,
} from '../types.js';
import { decideBinding, rotationDue, type Binding } from './binding.js';
import {
  boundKeypairSpec,
  type BKChallengePayload,
  type BKJoinPayload,
  type BKJoinResult,
  type BoundKeypairSpec,
  type BoundKeypairStatus,
} from './wire.js';

const CHALLENGE_TTL_S = 60;
const TWO_PLACES_MESSAGE = 'the join was refused and the token locked: the keypair was used from two places';

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

/** The new key of a due rotation: sent, not the old one, and its signature over the same claims verifies. */
async function newKey(p: Partial<BKJoinPayload>, key: string, claims: string): Promise<string> {
  if (typeof p.new_public_key !== 'string') {
    const message = 'the join was refused: a key rotation is due (rotate_after) and tbot sent no new key';
    throw new JoinRefusal('rotation due but no new key sent', message);
  }
  const fresh = normalizeKey(p.new_public_key, 'payload.new_public_key');
  if (fresh === key) throw new JoinRefusal('rotation to the same key');
  await verifySignature(p.new_signature, claims, sshPublicKeyToKeyObject(fresh, 'payload.new_public_key'), 'new key');
  return fresh;
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
  if (got.length !== want.length || !timingSafeEqual(got, want))
    throw new JoinRefusal(`${what}: signed claims differ from the challenge`);
}

/** Bound keypair: a key registered once signs a fresh challenge at every join; no secret after the first. */
export const boundKeypairServer: ServerJoinMethod = {
  name: 'bound_keypair',

  prepareToken(spec, now, previous) {
    const bk = parseWith(boundKeypairSpec, spec.bound_keypair ?? {}, {
      code: 'BAD_REQUEST',
      path: ['spec', 'bound_keypair'],
    });
    const onboarding = { ...bk.onboarding };
    let shownOnce: Record<string, string> | undefined;
    if (onboarding.initial_public_key)
      onboarding.initial_public_key = normalizeKey(
        onboarding.initial_public_key,
        'spec.bound_keypair.onboarding.initial_public_key',
      );
    const kept = previous ? specOf(previous).onboarding.registration_secret_hash : undefined;
    if (
      !onboarding.registration_secret &&
      !onboarding.initial_public_key &&
      !onboarding.registration_secret_hash &&
      kept
    ) {
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
      throw new MwiError('BAD_REQUEST', 'already in the past', {
        field: 'spec.bound_keypair.onboarding.must_register_before',
      });
    }
    return { spec: { ...spec, bound_keypair: { ...bk, onboarding } }, ...(shownOnce ? { shownOnce } : {}) };
  },
  create: () => handler,
};

const handler: JoinHandler = {
  renewHints(token, now) {
    return rotationDue(specOf(token.spec), statusOf(token.status), now) ? { rejoin_due: true } : {};
  },

  renewRefusal(token, instanceId) {
    // one instance per key (standard and relaxed): only the instance the key is bound to renews;
    // insecure mode lets every holder of a shared static key have its own instance
    if (specOf(token.spec).recovery.mode === 'insecure') return undefined;
    const bound = statusOf(token.status).bound_bot_instance_id;
    return bound && bound !== instanceId
      ? `the bound keypair is bound to instance ${bound} now, not ${instanceId} (replaced by a later join)`
      : undefined;
  },

  async challenge(ctx) {
    const spec = specOf(ctx.token.spec);
    const status = statusOf(ctx.token.status);
    const keys = (ctx.payload as Partial<BKChallengePayload> | undefined)?.public_keys;
    if (!Array.isArray(keys) || keys.length === 0 || keys.length > 8)
      throw new MwiError('BAD_REQUEST', 'expected 1 to 8 public keys', { field: 'payload.public_keys' });
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

  async verify(ctx: ServerJoinContext): Promise<JoinVerdict> {
    const spec = specOf(ctx.token.spec);
    const p = (ctx.request.payload ?? {}) as Partial<BKJoinPayload>;
    const ch = ctx.challenge;
    if (!ch || typeof ch.claims !== 'string' || typeof ch.public_key !== 'string')
      throw new JoinRefusal('no valid challenge for this join');
    const claims = JSON.parse(ch.claims) as { exp: number };
    if (claims.exp * 1000 <= ctx.now) throw new JoinRefusal('challenge expired');
    const key = ch.public_key;
    // the key is read from the challenge this server stored, never from the request
    await verifySignature(p.signature, ch.claims, sshPublicKeyToKeyObject(key, 'public_key'), 'bound key');
    const rotatedTo = ch.rotate === true ? await newKey(p, key, ch.claims) : undefined;
    // the join state from the previous join, checked only once the key's signature verified:
    // nobody without the key can make a stale one lock the token
    const previous = typeof p.join_state === 'string' ? await ctx.verifyState(p.join_state) : undefined;

    let binding: Extract<Binding, { kind: 'bind' }> | undefined;
    // every rule is decided on the status as stored, and written with one conditional write
    await ctx.updateTokenStatus(async (raw) => {
      const status = statusOf(raw);
      const bound = status.bound_bot_instance_id ? await ctx.instanceStatus(status.bound_bot_instance_id) : undefined;
      const b = decideBinding({
        spec,
        status,
        tokenId: ctx.token.id,
        botName: ctx.token.botName,
        key,
        rotatedTo,
        registrationSecret: p.registration_secret,
        joinState: previous,
        caller: ctx.caller,
        bound,
        newInstanceId: ctx.newInstanceId,
        now: ctx.now,
      });
      if (b.kind === 'lock') {
        await ctx.lockToken(b.reason);
        throw new JoinRefusal(b.reason, TWO_PLACES_MESSAGE);
      }
      binding = b;
      return { status: { ...raw, bound_keypair: b.status }, ...(b.replaced ? { end: [b.replaced] } : {}) };
    });
    const { status: next, refresh } = binding!;
    const rotated = rotatedTo !== undefined;
    const joinState = await ctx.signState({
      token: ctx.token.id,
      bot_instance_id: next.bound_bot_instance_id ?? refresh ?? ctx.newInstanceId,
      recovery_sequence: next.recovery_count ?? 0,
    });
    const result: BKJoinResult = {
      join_state: joinState,
      bound_public_key: next.bound_public_key!,
      recovery_count: next.recovery_count ?? 0,
      recovery_limit: spec.recovery.limit,
      recovery_mode: spec.recovery.mode,
      rotated,
    };
    return {
      ...(refresh ? { refreshInstance: refresh } : {}),
      attributes: {
        bound_public_key_fingerprint: `sha256:${sha256Hex(next.bound_public_key!)}`,
        recovery_count: result.recovery_count,
        recovery_limit: result.recovery_limit,
        recovery_mode: result.recovery_mode,
        ...(rotated ? { rotated: true } : {}),
      },
      methodData: result as unknown as Record<string, unknown>,
    };
  },
};
