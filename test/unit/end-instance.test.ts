import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { eventLogger } from '../../src/auth/event-log.js';
import { AuthMetrics } from '../../src/auth/metrics.js';
import { handleCerts } from '../../src/auth/certs.js';
import { handleEndInstance } from '../../src/auth/end-instance.js';
import { instanceKey } from '../../src/auth/instances.js';
import { handleJoin } from '../../src/auth/join.js';
import { handleRenew } from '../../src/auth/renew.js';
import type { BotInstance } from '../../src/api/resources.js';
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
  const stored = async (id: string) => {
    const item = await t.ctx.backend.get(instanceKey('robot', id));
    return item ? (JSON.parse(item.value) as BotInstance) : undefined;
  };
  const events = () =>
    readFileSync(t.auditPath, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  const setup = async () => {
    t = await testContext();
    pub = (await generateKeys('ec-p256')).publicKeyPem;
    await t.admin.create(
      { kind: 'role', metadata: { name: 'dev' }, spec: { allow: { logins: ['deploy'] } } },
      false,
      'admin',
    );
    await t.admin.addBot({ name: 'robot', roles: ['dev'] }, 'admin');
  };
  before(setup);

  it('ends the caller’s instance only; its identity is refused from then on; audited with the reason', async () => {
    const mine = await join();
    const other = await join();
    const c = claimsOf(mine.tls_cert);
    assert.deepEqual(await handleEndInstance(t.ctx, c, { reason: 'output write failed\u001b[2J' }, '10.0.0.1'), {
      ok: true,
    });
    // kept as evidence (anyone holding the identity can end it), marked ended
    const kept = await stored(mine.instance_id);
    assert.equal(kept?.status.ended?.reason, 'ended by a holder of its identity: output write failed[2J');
    assert.equal(kept.status.initial_authentication.join_method, 'token');
    assert.equal((await stored(other.instance_id))?.status.ended, undefined, 'another instance is untouched');
    const endedBy = (e: unknown) =>
      isMwiError(e, 'LOCKED') && /was ended by a holder of its identity \(ended by .*output write/.test(e.message);
    await assert.rejects(handleCerts(t.ctx, c, { public_key: pub }, '-'), endedBy);
    await assert.rejects(handleRenew(t.ctx, c, { public_key: pub }, '-'), endedBy);
    await t.ctx.audit.close();
    const ended = events().filter((e) => e.event === 'instance.ended');
    assert.equal(ended.length, 1);
    assert.equal(ended[0]!.bot_instance_id, mine.instance_id);
    assert.equal(ended[0]!.remote_addr, '10.0.0.1');
    // self-reported text: no control characters reach an operator's terminal
    assert.equal(ended[0]!.reason, 'ended by a holder of its identity: output write failed[2J');
  });

  it('an ended instance, kept as evidence, is not counted as an active one (mwi_bot_instances)', async () => {
    await setup();
    const count = async () => {
      const m = new AuthMetrics();
      await m.refresh(t.ctx.cas, t.ctx.backend, t.ctx.now());
      return Number(/^mwi_bot_instances (\d+)$/m.exec(m.registry.render())?.[1]);
    };
    const a = await join();
    await join();
    assert.equal(await count(), 2);
    await handleEndInstance(t.ctx, claimsOf(a.tls_cert), { reason: 'a "ended":{ in the reason' }, '-');
    assert.ok(await stored(a.instance_id), 'kept');
    assert.equal(await count(), 1);
  });

  it('needs a bot identity: no certificate, or an instance already ended, is refused', async () => {
    await assert.rejects(handleEndInstance(t.ctx, undefined, {}, '-'), (e) => isMwiError(e, 'ACCESS_DENIED'));
    const id = await join();
    await handleEndInstance(t.ctx, claimsOf(id.tls_cert), {}, '-');
    await assert.rejects(handleEndInstance(t.ctx, claimsOf(id.tls_cert), {}, '-'), (e) => isMwiError(e, 'LOCKED'));
  });

  it('a stolen copy that ends the instance erases nothing: an older copy is still caught and audited', async () => {
    await setup(); // a fresh audit log: an earlier test closed this one
    const first = await join();
    const old = claimsOf(first.tls_cert);
    // the legitimate tbot renews (generation 2); the thief holds that generation too and ends it
    const renewed = await handleRenew(t.ctx, old, { public_key: pub }, '-');
    await handleEndInstance(t.ctx, claimsOf(renewed.tls_cert), { reason: 'bye' }, '10.6.6.6');
    // a third copy, still at generation 1, is the evidence of a copied identity: locked and audited
    await assert.rejects(
      handleCerts(t.ctx, old, { public_key: pub }, '-'),
      (e) => isMwiError(e, 'LOCKED') && /used from two places/.test(e.message),
    );
    await t.ctx.audit.close();
    const locked = events().filter((e) => e.event === 'instance.locked' && e.bot_instance_id === first.instance_id);
    assert.equal(locked.length, 1);
    assert.match(String(locked[0]!.reason), /generation mismatch: certificate has 1, server has 2/);
  });

  it('instance.ended is logged at INFO with its reason', () => {
    const lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }> = [];
    const at =
      (level: string) =>
      (msg: string, fields: Record<string, unknown> = {}) =>
        lines.push({ level, msg, fields });
    const log = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
    eventLogger(log).observe({
      event: 'instance.ended',
      success: true,
      bot_name: 'robot',
      bot_instance_id: 'i-1',
      reason: 'ended by a holder of its identity: bye',
    });
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.level, 'info');
    assert.match(lines[0]!.msg, /ended by a holder of its identity/);
    assert.equal(lines[0]!.fields.reason, 'ended by a holder of its identity: bye');
  });
});
