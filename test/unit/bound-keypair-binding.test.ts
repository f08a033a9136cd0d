import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sha256Hex } from '../../src/crypto/keys.js';
import { isMwiError } from '../../src/errors.js';
import { decideBinding, rotationDue, type BindingInput } from '../../src/join/bound_keypair/binding.js';
import { boundKeypairSpec, type BoundKeypairStatus } from '../../src/join/bound_keypair/wire.js';
import { JoinRefusal } from '../../src/join/types.js';

// the binding rules called directly: no storage, no clock, no signatures (the server half checks
// those before it asks)

const NOW = Date.parse('2026-03-01T12:00:00Z');
const AT = new Date(NOW).toISOString();
const KEY = 'ssh-ed25519 AAAAold';
const NEW_KEY = 'ssh-ed25519 AAAAnew';
const SECRET = 'registration-secret-0123';

const spec = (bk: Record<string, unknown> = {}) => boundKeypairSpec.parse(bk);
/** The status after a first join by instance `i1`, then `recoveries` recoveries (the latest by `i<n>`). */
const boundStatus = (recoveries = 0): BoundKeypairStatus => ({
  registered_at: AT,
  recovery_count: 1 + recoveries,
  previous_recovery_count: recoveries,
  bound_bot_instance_id: `i${1 + recoveries}`,
  ...(recoveries > 0 ? { previous_bot_instance_id: `i${recoveries}` } : {}),
  bound_public_key: KEY,
});
/** The join state document the join that bound `instance` at `seq` handed out. */
const state = (instance: string, seq: number) => ({ token: 'tok', bot_instance_id: instance, recovery_sequence: seq });
const expired = { live: false, used: true, sameKey: false };

function input(over: Partial<BindingInput> = {}): BindingInput {
  return {
    spec: spec({ onboarding: { registration_secret_hash: sha256Hex(SECRET) } }),
    status: {},
    tokenId: 'tok',
    botName: 'robot',
    key: KEY,
    rotatedTo: undefined,
    registrationSecret: undefined,
    joinState: undefined,
    caller: undefined,
    bound: undefined,
    newInstanceId: 'new',
    now: NOW,
    ...over,
  };
}

/** The decision, which must be to bind. */
function bind(over: Partial<BindingInput>) {
  const b = decideBinding(input(over));
  assert.equal(b.kind, 'bind');
  return b;
}

/** Refused with this internal reason and, if given, this public message. */
function refuses(over: Partial<BindingInput>, reason: RegExp, message?: RegExp): void {
  assert.throws(
    () => decideBinding(input(over)),
    (e) => {
      assert.ok(e instanceof JoinRefusal && isMwiError(e, 'JOIN_DENIED'), String(e));
      assert.match(e.detail ?? '', reason);
      if (message) assert.match(e.message, message);
      return true;
    },
  );
}

/** The reason the token is locked for. */
function locks(over: Partial<BindingInput>): string {
  const b = decideBinding(input(over));
  assert.equal(b.kind, 'lock');
  return b.reason;
}

const limit = (n: number) => spec({ recovery: { limit: n } });
const live = { live: true, used: true, sameKey: false };
const unused = { live: true, used: false, sameKey: true };

describe('bound keypair: rotationDue', () => {
  const bound = { bound_public_key: KEY };
  const after = (at: string) => spec({ rotate_after: at });
  it('is due once rotate_after has passed, for a bound key not rotated since', () => {
    assert.equal(rotationDue(spec(), bound, NOW), false);
    assert.equal(rotationDue(after('2026-03-01T13:00:00Z'), bound, NOW), false);
    assert.equal(rotationDue(after('2026-03-01T11:00:00Z'), bound, NOW), true);
    assert.equal(rotationDue(after('2026-03-01T11:00:00Z'), {}, NOW), false, 'nothing bound yet');
    const rotated = { ...bound, last_rotated_at: '2026-03-01T11:30:00Z' };
    assert.equal(rotationDue(after('2026-03-01T11:00:00Z'), rotated, NOW), false);
  });
});

describe('bound keypair: decideBinding', () => {
  it('first join with the registration secret binds the key to the new instance', () => {
    const b = bind({ registrationSecret: SECRET });
    const first = { registered_at: AT, recovery_count: 1, previous_recovery_count: 0, bound_bot_instance_id: 'new' };
    assert.deepEqual(b.status, { ...first, bound_public_key: KEY });
    assert.equal(b.refresh, undefined);
    assert.equal(b.replaced, undefined);
  });

  it('first join: no or a wrong secret, a closed window, not the pre-registered key: refused', () => {
    refuses({}, /registration secret missing/);
    refuses({ registrationSecret: 'not-the-secret-0123' }, /registration secret does not match/);
    const hash = sha256Hex(SECRET);
    const window = { registration_secret_hash: hash, must_register_before: '2026-03-01T11:00:00Z' };
    const closed = spec({ onboarding: window });
    refuses({ spec: closed, registrationSecret: SECRET }, /registration window closed/);
    const preRegistered = spec({ onboarding: { initial_public_key: KEY } });
    assert.equal(bind({ spec: preRegistered }).status.bound_bot_instance_id, 'new');
    refuses({ spec: preRegistered, key: NEW_KEY }, /not the pre-registered initial_public_key/);
  });

  it('a key that is no longer the bound one is refused, whoever asks', () => {
    refuses({ status: boundStatus(), key: NEW_KEY }, /no longer the bound key/);
  });

  it('the bound instance refreshes: nothing counts or ends; a due rotation binds the new key', () => {
    const caller = { bot: 'robot', instance: 'i1', generation: 3 };
    const b = bind({ status: boundStatus(), caller });
    assert.deepEqual(b.status, boundStatus());
    assert.equal(b.refresh, 'i1');
    assert.equal(b.replaced, undefined);
    const r = bind({ status: boundStatus(), caller, rotatedTo: NEW_KEY });
    assert.equal(r.status.bound_public_key, NEW_KEY);
    assert.equal(r.status.last_rotated_at, AT);
    // another bot's identity with the same instance id is no refresh
    const recovery = { spec: limit(2), joinState: state('i1', 1), bound: expired };
    const other = { ...caller, bot: 'other' };
    assert.equal(bind({ ...recovery, status: boundStatus(), caller: other }).refresh, undefined);
  });

  it('a recovery with the latest join state counts one more, rebinds the key, ends the expired instance', () => {
    const b = bind({ spec: limit(2), status: boundStatus(), joinState: state('i1', 1), bound: expired });
    assert.deepEqual(b.status, {
      ...boundStatus(),
      previous_bot_instance_id: 'i1',
      previous_recovery_count: 1,
      recovery_count: 2,
      last_recovered_at: AT,
      bound_bot_instance_id: 'new',
    });
    assert.equal(b.replaced, 'i1');
    assert.equal(b.refresh, undefined);
  });

  it('the recovery limit: refused in standard mode (a message for the administrator), counted on in relaxed', () => {
    const at = { status: boundStatus(), joinState: state('i1', 1), bound: expired };
    refuses(at, /recovery limit reached \(1\/1\)/, /must raise recovery.limit/);
    assert.equal(bind({ ...at, spec: spec({ recovery: { mode: 'relaxed' } }) }).status.recovery_count, 2);
  });

  it('without a join state: refused, saying whether a live instance holds the key', () => {
    const at = { spec: limit(5), status: boundStatus(1) };
    refuses({ ...at, bound: expired }, /join state document missing or invalid/, /tbot storage lost/);
    refuses({ ...at, bound: live }, /no join state, and the key is bound to live instance i2/, /another bot instance/);
  });

  it('the latest join state while the bound instance is live: refused (a second copy of the key)', () => {
    const at = { spec: limit(5), status: boundStatus(), joinState: state('i1', 1), bound: live };
    refuses(at, /which still holds a valid identity/, /another bot instance holds/);
  });

  it('a stale join state locks the token (the keypair was used from two places)', () => {
    const at = { spec: limit(5), status: boundStatus(2), bound: expired };
    assert.equal(
      locks({ ...at, joinState: state('i1', 1) }),
      'join state mismatch: document has instance i1 sequence 1, token has i3 3 (the keypair was used from two places)',
    );
    // a document for another token is no better than a stale one
    locks({ ...at, joinState: { ...state('i3', 3), token: 'other' } });
  });

  it("a lost first join's answer: retried without a join state while its instance is unused, same key", () => {
    const b = bind({ status: boundStatus(), bound: unused });
    assert.deepEqual(b.status, { ...boundStatus(), bound_bot_instance_id: 'new' }, 'the lost join already counted');
    assert.equal(b.replaced, 'i1');
    // once used, or for another key, it is not a retry
    refuses({ status: boundStatus(), bound: { ...unused, used: true } }, /no join state/);
    refuses({ status: boundStatus(), bound: { ...unused, sameKey: false } }, /no join state/);
  });

  it("a lost recovery's answer: the join state before it counts once more while the new instance is unused", () => {
    const at = { spec: limit(5), status: boundStatus(1), joinState: state('i1', 1) };
    const b = bind({ ...at, bound: unused });
    assert.deepEqual(b.status, { ...boundStatus(1), bound_bot_instance_id: 'new' });
    assert.equal(b.replaced, 'i2');
    // for another key than the lost answer certified: a second holder of key and state
    assert.match(locks({ ...at, bound: { ...unused, sameKey: false } }), /asks for another key than that join/);
    // once the new instance was used, the old state is stale
    assert.match(locks({ ...at, bound: { ...unused, used: true } }), /join state mismatch/);
  });

  it('insecure mode: no join state, no limit, and the previous instance is not ended', () => {
    const b = bind({ spec: spec({ recovery: { mode: 'insecure' } }), status: boundStatus(3), bound: live });
    assert.equal(b.status.recovery_count, 5);
    assert.equal(b.status.bound_bot_instance_id, 'new');
    assert.equal(b.replaced, undefined);
  });
});
