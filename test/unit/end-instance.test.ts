import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { handleCerts } from '../../src/auth/certs.js';
import { handleEndInstance } from '../../src/auth/end-instance.js';
import { instanceKey } from '../../src/auth/instances.js';
import { handleJoin } from '../../src/auth/join.js';
import { handleRenew } from '../../src/auth/renew.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { isMwiError } from '../../src/errors.js';
import { claimsOf, testContext } from '../helpers/auth-context.js';

type T = Awaited<ReturnType<typeof testContext>>;

describe('POST /v1/instance/end: a bot ends its own instance (Auth Service core)', () => {
  let t: T;
  let pub: string;
  const join = async () => {
    const { token } = await t.admin.addToken({ bot_name: 'robot', join_method: 'token', ttl: '30m' }, 'admin');
    return handleJoin(t.ctx, { token, join_method: 'token', public_key: pub }, '127.0.0.1');
  };
  const exists = async (id: string) => (await t.ctx.backend.get(instanceKey('robot', id))) !== undefined;
  const events = () =>
    readFileSync(t.auditPath, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  before(async () => {
    t = await testContext();
    pub = (await generateKeys('ec-p256')).publicKeyPem;
    await t.admin.create(
      { kind: 'role', metadata: { name: 'dev' }, spec: { allow: { logins: ['deploy'] } } },
      false,
      'admin',
    );
    await t.admin.addBot({ name: 'robot', roles: ['dev'] }, 'admin');
  });

  it('ends the caller’s instance only; its identity is refused from then on; audited with the reason', async () => {
    const mine = await join();
    const other = await join();
    const c = claimsOf(mine.tls_cert);
    assert.deepEqual(await handleEndInstance(t.ctx, c, { reason: 'output write failed\u001b[2J' }, '10.0.0.1'), {
      ok: true,
    });
    assert.equal(await exists(mine.instance_id), false);
    assert.equal(await exists(other.instance_id), true, 'another instance of the same bot is untouched');
    await assert.rejects(handleCerts(t.ctx, c, { public_key: pub }, '-'), (e) => isMwiError(e, 'ACCESS_DENIED'));
    await assert.rejects(handleRenew(t.ctx, c, { public_key: pub }, '-'), (e) => isMwiError(e, 'RENEW_DENIED'));
    await t.ctx.audit.close();
    const ended = events().filter((e) => e.event === 'instance.ended');
    assert.equal(ended.length, 1);
    assert.equal(ended[0]!.bot_instance_id, mine.instance_id);
    assert.equal(ended[0]!.remote_addr, '10.0.0.1');
    // self-reported text: no control characters reach an operator's terminal
    assert.equal(ended[0]!.reason, 'ended by the bot itself: output write failed[2J');
  });

  it('needs a bot identity: no certificate, or an instance already ended, is refused', async () => {
    await assert.rejects(handleEndInstance(t.ctx, undefined, {}, '-'), (e) => isMwiError(e, 'ACCESS_DENIED'));
    const id = await join();
    await handleEndInstance(t.ctx, claimsOf(id.tls_cert), {}, '-');
    await assert.rejects(handleEndInstance(t.ctx, claimsOf(id.tls_cert), {}, '-'), (e) =>
      isMwiError(e, 'ACCESS_DENIED'),
    );
  });
});
