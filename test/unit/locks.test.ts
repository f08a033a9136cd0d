import assert from 'node:assert/strict';
import { it } from 'node:test';
import { activeLock, openLockCache } from '../../src/auth/access.js';
import type { AuthContext } from '../../src/auth/context.js';
import type { Lock } from '../../src/api/resources.js';
import { MemoryBackend } from '../../src/storage/memory.js';
import { fakeClock } from '../helpers/clock.js';

function lock(name: string, target: Lock['spec']['target'], extra: Partial<Lock['spec']> = {}): string {
  const l: Lock = {
    kind: 'lock',
    version: 'v2',
    metadata: { name },
    spec: { target, message: `lock ${name}`, created_by: 'test', created: new Date(0).toISOString(), ...extra },
  };
  return JSON.stringify(l);
}

it('activeLock finds locks by target through the index, as they are added, changed and removed', async () => {
  const backend = new MemoryBackend();
  const clock = fakeClock(Date.parse('2026-01-01T00:00:00Z'));
  // many locks on other targets: found by index, not by scanning them
  for (let i = 0; i < 5000; i++)
    await backend.put(`/locks/other-${i}`, lock(`other-${i}`, { bot_instance_id: `instance-${i}` }));
  const locks = await openLockCache(backend);
  const ctx = { locks, now: clock.now } as unknown as AuthContext;
  try {
    assert.equal(activeLock(ctx, 'deploy', 'mine', 'tok'), undefined);
    assert.equal(activeLock(ctx, 'deploy', 'instance-42'), 'lock other-42');

    await backend.put('/locks/by-bot', lock('by-bot', { user: 'bot-deploy' }));
    assert.equal(activeLock(ctx, 'deploy'), 'lock by-bot');
    assert.equal(activeLock(ctx, 'other-bot'), undefined);

    // the same lock re-targeted: the old target is free again
    await backend.put('/locks/by-bot', lock('by-bot', { join_token: 'tok' }));
    assert.equal(activeLock(ctx, 'deploy'), undefined);
    assert.equal(activeLock(ctx, 'deploy', undefined, 'tok'), 'lock by-bot');

    // an expired lock is not in force; removing a lock frees its target
    const soon = new Date(clock.now() + 1000).toISOString();
    await backend.put('/locks/soon', lock('soon', { bot_instance_id: 'mine' }, { expires: soon }));
    assert.equal(activeLock(ctx, 'deploy', 'mine'), 'lock soon');
    clock.advance(2000);
    assert.equal(activeLock(ctx, 'deploy', 'mine'), undefined);
    await backend.delete('/locks/by-bot');
    assert.equal(activeLock(ctx, 'deploy', undefined, 'tok'), undefined);
  } finally {
    locks.close();
    await backend.close();
  }
});
