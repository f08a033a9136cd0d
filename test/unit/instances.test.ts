import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { AuthContext } from '../../src/auth/context.js';
import { createInstanceOp, instanceKey, instanceState } from '../../src/auth/instances.js';
import type { BotInstance } from '../../src/api/resources.js';

const NOW = Date.parse('2026-03-01T12:00:00Z');
const ctx = { now: () => NOW } as unknown as AuthContext;
const KEY = `sha256:${'ab'.repeat(32)}`;

it('a join creates its instance at generation 1, unconfirmed, forgotten 5 minutes after its credential', () => {
  const op = createInstanceOp(ctx, {
    botName: 'robot',
    botUid: 'uid-1',
    instanceId: 'i1',
    joinMethod: 'token',
    tokenId: 'h-0123',
    attributes: undefined,
    keyFingerprint: KEY,
    credentialExpires: '2026-03-01T13:00:00.000Z',
  });
  assert.ok(op.op === 'create');
  assert.equal(op.key, instanceKey('robot', 'i1'));
  assert.equal(op.expires, Date.parse('2026-03-01T13:05:00.000Z'));
  const instance = JSON.parse(op.value) as BotInstance;
  assert.deepEqual(instance.spec, { bot_name: 'robot', instance_id: 'i1', bot_uid: 'uid-1' });
  assert.equal(instance.status.generation, 1);
  assert.equal(instance.status.generation_confirmed, false);
  assert.equal(instance.status.public_key_fingerprint, 'ab'.repeat(32));
  const first = { auth_at: '2026-03-01T12:00:00.000Z', join_method: 'token', join_token_name: 'h-0123' };
  assert.deepEqual(instance.status.initial_authentication, first);
});

it('what a join learns of an instance: live, used, and whether it certifies the same key', () => {
  const op = createInstanceOp(ctx, {
    botName: 'robot',
    botUid: undefined,
    instanceId: 'i1',
    joinMethod: 'bound_keypair',
    tokenId: 'bk',
    attributes: { recovery_count: 1 },
    keyFingerprint: KEY,
    credentialExpires: '2026-03-01T13:00:00.000Z',
  });
  assert.ok(op.op === 'create');
  const instance = JSON.parse(op.value) as BotInstance;
  assert.deepEqual(instance.status.initial_authentication.metadata, { recovery_count: 1 });
  assert.deepEqual(instanceState(instance, NOW, KEY), { live: true, used: false, sameKey: true });
  const expired = Date.parse('2026-03-01T13:00:00Z');
  assert.deepEqual(instanceState(instance, expired, 'sha256:other'), { live: false, used: false, sameKey: false });
  const renewed = { ...instance, status: { ...instance.status, generation: 2 } };
  assert.equal(instanceState(renewed, NOW, KEY).used, true);
  const confirmed = { ...instance, status: { ...instance.status, generation_confirmed: true } };
  assert.equal(instanceState(confirmed, NOW, KEY).used, true);
});
