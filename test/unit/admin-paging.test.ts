import assert from 'node:assert/strict';
import { it } from 'node:test';
import { isMwiError } from '../../src/errors.js';
import { testContext } from '../helpers/auth-context.js';

it('admin listings come in pages that cover every item exactly once', async () => {
  const { admin } = await testContext();
  for (let i = 0; i < 7; i++) {
    await admin.create({ kind: 'role', metadata: { name: `r${i}` }, spec: {} }, false, 'admin');
  }
  const seen: string[] = [];
  let next: string | undefined;
  let pages = 0;
  do {
    const page = await admin.list('roles', { limit: 3, ...(next ? { startAfter: next } : {}) });
    seen.push(...page.items.map((r) => (r as { metadata: { name: string } }).metadata.name));
    next = page.next;
    pages++;
  } while (next);
  assert.equal(pages, 3);
  assert.deepEqual(seen, ['r0', 'r1', 'r2', 'r3', 'r4', 'r5', 'r6']);
  const exact = await admin.list('roles', { limit: 7 });
  assert.equal(exact.items.length, 7);
  assert.equal(exact.next, undefined, 'no empty last page');
  await assert.rejects(admin.list('roles', { startAfter: '/bots/x' }), (e) => isMwiError(e, 'BAD_REQUEST'));
});

it('tctl get bot_instance: by BOT/ID in one read, by ID alone, and NOT_FOUND for names that are not there', async () => {
  const { admin, ctx } = await testContext();
  const id = '00000000-0000-4000-8000-000000000001';
  const inst = {
    kind: 'bot_instance',
    version: 'v1',
    metadata: { name: id },
    spec: { bot_name: 'ci', instance_id: id },
  };
  await ctx.backend.put(`/bot_instances/ci/${id}`, JSON.stringify(inst));
  assert.deepEqual(await admin.get('bot_instance', `ci/${id}`), inst);
  assert.deepEqual(await admin.get('bot_instance', id), inst);
  for (const name of [`other/${id}`, 'ci/', '/x', `ci/${id}/extra`, 'nope']) {
    await assert.rejects(admin.get('bot_instance', name), (e) => isMwiError(e, 'NOT_FOUND'), name);
  }
});
