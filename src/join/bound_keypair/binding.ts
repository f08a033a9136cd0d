import { timingSafeEqual } from 'node:crypto';
import { sha256Hex } from '../../crypto/keys.js';
import { JoinRefusal, type CallerIdentity, type InstanceState } from '../types.js';
import type { BoundKeypairSpec, BoundKeypairStatus } from './wire.js';

/**
 * The bound-keypair rules, as pure functions: what a join whose signatures verified does to the
 * token's binding, decided from the status as stored (no storage, no clock: the caller reads
 * both and writes the outcome with one conditional write).
 */

const LIVE_MESSAGE =
  'the join was refused: another bot instance holds this bound keypair and its identity is still valid ' +
  '(only recovery.mode insecure allows concurrent instances, e.g. for a static key shared by CI runs)';
const LIMIT_MESSAGE =
  'the join was refused: this bound keypair has used all its recoveries; ' +
  'an administrator must raise recovery.limit on the token (tctl create -f --force)';
const NO_STATE_MESSAGE =
  'the join was refused: the join state from the previous join is missing or invalid ' +
  '(tbot storage lost? a static key shared by CI runs needs recovery.mode insecure)';

/** Whether the bound key must be rotated at `now` (spec.rotate_after). */
export function rotationDue(spec: BoundKeypairSpec, status: BoundKeypairStatus, now: number): boolean {
  if (!spec.rotate_after || !status.bound_public_key) return false;
  const at = Date.parse(spec.rotate_after);
  // due once rotate_after has passed, unless a rotation already happened after it
  return at <= now && !(status.last_rotated_at && Date.parse(status.last_rotated_at) >= at);
}

/** Everything a binding decision depends on. */
export interface BindingInput {
  spec: BoundKeypairSpec;
  /** The token's status as stored now. */
  status: BoundKeypairStatus;
  tokenId: string;
  botName: string;
  /** The key that signed the challenge (read from the challenge, never from the request). */
  key: string;
  /** The new key of a due rotation, whose signature verified too. */
  rotatedTo: string | undefined;
  /** The registration secret the join sent, if any (first join). */
  registrationSecret: unknown;
  /** The join state document the join sent, if its signature verified (the join before this one). */
  joinState: Record<string, unknown> | undefined;
  caller: CallerIdentity | undefined;
  /** The instance the key is bound to, as stored now; undefined if none or gone. */
  bound: InstanceState | undefined;
  newInstanceId: string;
  now: number;
}

/**
 * What the join does: bind (the token's next status; the caller's instance to continue, if this is
 * a refresh; the instance the key is rebound away from, to end in the same write), or lock the
 * token (the keypair was used from two places) and refuse. Other refusals are thrown.
 */
export type Binding =
  | { kind: 'bind'; status: BoundKeypairStatus; refresh: string | undefined; replaced: string | undefined }
  | { kind: 'lock'; reason: string };

export function decideBinding(input: BindingInput): Binding {
  const { status, key } = input;
  if (status.bound_public_key && status.bound_public_key !== key) {
    throw new JoinRefusal('the key is no longer the bound key (rotated meanwhile)');
  }
  const at = new Date(input.now).toISOString();
  let next: BoundKeypairStatus;
  let refresh: string | undefined;
  let replaced: string | undefined;
  if (!status.bound_public_key) {
    next = register(input, at);
  } else if (input.caller?.bot === input.botName && input.caller.instance === status.bound_bot_instance_id) {
    // refresh: the bound instance with a valid identity (its generation is checked by the caller)
    next = { ...status };
    refresh = input.caller.instance;
  } else {
    const recovery = recover(input, at);
    if (recovery.kind === 'lock') return recovery;
    ({ next, replaced } = recovery);
  }
  next.bound_public_key = input.rotatedTo ?? key;
  if (input.rotatedTo) next.last_rotated_at = at;
  return { kind: 'bind', status: next, refresh, replaced };
}

/** First join: the registration secret or the pre-registered key. */
function register(input: BindingInput, at: string): BoundKeypairStatus {
  const ob = input.spec.onboarding;
  if (ob.must_register_before && Date.parse(ob.must_register_before) <= input.now) {
    throw new JoinRefusal('registration window closed (must_register_before passed)');
  }
  if (ob.initial_public_key) {
    if (input.key !== ob.initial_public_key) throw new JoinRefusal('key is not the pre-registered initial_public_key');
  } else {
    const hash = ob.registration_secret_hash;
    const secret = input.registrationSecret;
    if (!hash || typeof secret !== 'string') throw new JoinRefusal('registration secret missing');
    if (!timingSafeEqual(Buffer.from(sha256Hex(secret), 'hex'), Buffer.from(hash, 'hex'))) {
      throw new JoinRefusal('registration secret does not match');
    }
  }
  return {
    ...input.status,
    registered_at: at,
    recovery_count: 1,
    previous_recovery_count: 0,
    bound_bot_instance_id: input.newInstanceId,
  };
}

type Recovery =
  { kind: 'bind'; next: BoundKeypairStatus; replaced: string | undefined } | { kind: 'lock'; reason: string };

/**
 * A join by anyone but the bound instance: a recovery (the bound instance's identity expired),
 * or the retry of a join whose answer was lost. Outside insecure mode the join state must prove
 * this is the tbot that joined last; a stale one means the keypair was used from two places.
 */
function recover(input: BindingInput, at: string): Recovery {
  const { spec, status, bound } = input;
  const mode = spec.recovery.mode;
  let retry = false;
  if (mode !== 'insecure') {
    const doc = input.joinState;
    // the first join's answer was lost: tbot holds the key but never got a join state (a retry is
    // idempotent: it asks for the same key the lost answer certified, which tbot keeps pending
    // until it stores the answer)
    const onlyFirstJoin = status.recovery_count === 1 && status.previous_recovery_count === 0;
    const firstRetry = !doc && onlyFirstJoin && bound !== undefined && !bound.used && bound.sameKey;
    if (firstRetry) retry = true;
    else if (!doc) {
      if (bound?.live) {
        const reason = `no join state, and the key is bound to live instance ${status.bound_bot_instance_id}`;
        throw new JoinRefusal(reason, LIVE_MESSAGE);
      }
      throw new JoinRefusal('join state document missing or invalid', NO_STATE_MESSAGE);
    }
    const matches = (instance: string | undefined, seq: number | undefined) =>
      doc?.token === input.tokenId && doc.bot_instance_id === instance && doc.recovery_sequence === seq;
    const latest = matches(status.bound_bot_instance_id, status.recovery_count);
    // the join before the latest one, while the latest one's instance was never used: tbot lost
    // that join's answer (a crash) and asks again; anything else is a second copy
    const previous = matches(status.previous_bot_instance_id, status.previous_recovery_count);
    const lostAnswer = !latest && previous && !bound?.used;
    retry ||= lostAnswer && (bound === undefined || bound.sameKey);
    if (!retry && !latest) {
      const reason = lostAnswer
        ? `a retry of the join before instance ${status.bound_bot_instance_id} (unused) asks for another key than ` +
          'that join certified (the keypair and join state were used from two places)'
        : `join state mismatch: document has instance ${String(doc?.bot_instance_id)} sequence ` +
          `${String(doc?.recovery_sequence)}, token has ${status.bound_bot_instance_id} ${status.recovery_count} ` +
          '(the keypair was used from two places)';
      return { kind: 'lock', reason };
    }
    if (!retry && bound?.live) {
      const reason = `the key is bound to instance ${status.bound_bot_instance_id}, which still holds a valid identity`;
      throw new JoinRefusal(`${reason} (a second copy of the key?)`, LIVE_MESSAGE);
    }
  }
  // one instance per key: the instance the key was bound to ends when it is rebound (the retry of
  // a lost join replaces an unused instance, a recovery an expired one); insecure mode lets every
  // holder of a shared static key have its own
  const replaced = mode === 'insecure' ? undefined : status.bound_bot_instance_id;
  // a retry: the lost join already counted; its unused instance is replaced
  if (retry) return { kind: 'bind', next: { ...status, bound_bot_instance_id: input.newInstanceId }, replaced };
  const count = status.recovery_count ?? 0;
  if (mode === 'standard' && count >= spec.recovery.limit) {
    throw new JoinRefusal(`recovery limit reached (${count}/${spec.recovery.limit})`, LIMIT_MESSAGE);
  }
  return {
    kind: 'bind',
    next: {
      ...status,
      previous_bot_instance_id: status.bound_bot_instance_id,
      previous_recovery_count: count,
      recovery_count: count + 1,
      last_recovered_at: at,
      bound_bot_instance_id: input.newInstanceId,
    },
    replaced,
  };
}
