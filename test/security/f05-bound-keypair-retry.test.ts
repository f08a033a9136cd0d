import assert from 'node:assert/strict';
import { before, beforeEach, describe, it } from 'node:test';
import { handleCerts } from '../../src/auth/certs.js';
import { handleHeartbeat } from '../../src/auth/heartbeat.js';
import { handleRenew } from '../../src/auth/renew.js';
import type { StoredToken } from '../../src/auth/tokens.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { isMwiError } from '../../src/errors.js';
import type { TxOp } from '../../src/storage/backend.js';
import { testContext } from '../helpers/auth-context.js';
import { bkClient, claimsOf } from '../helpers/bk-client.js';

type T = Awaited<ReturnType<typeof testContext>>;

const client = (t: T, token: string, options: Record<string, unknown> = {}) => bkClient(t, token, options, '10.0.0.1');

describe('finding 5: bound keypair: a recovery accepted as a retry ends the instance it replaces', () => {
  let t: T;
  let n = 0;
  let name: string;
  let pub: string;
  const status = async () =>
    ((JSON.parse((await t.ctx.backend.get(`/tokens/${name}`))!.value) as StoredToken).status?.bound_keypair ??
      {}) as Record<string, any>;
  const addToken = async () => {
    name = `f05-${n++}`;
    const out = await t.admin.create(
      {
        kind: 'token',
        metadata: { name },
        spec: {
          join_method: 'bound_keypair',
          bot_name: 'robot',
          bound_keypair: { recovery: { limit: 5, mode: 'standard' } },
        },
      },
      false,
      'admin',
    );
    return out.shown_once!.registration_secret!;
  };
  /**
   * A tbot that joined and used its instance, whose identity has since expired; and a copy of its
   * key and join state.
   */
  const joinedThenCopied = async () => {
    const secret = await addToken();
    const real = client(t, name, { registration_secret: secret });
    const a = await real.join();
    await handleRenew(t.ctx, claimsOf(a.tls_cert), { public_key: pub, ttl_seconds: 60 }, '10.0.0.1');
    t.clock.advance(61_000); // the identity expired: the next join is a recovery
    const attacker = client(t, name);
    attacker.state = structuredClone(real.state);
    return { real, attacker };
  };

  before(async () => {
    t = await testContext();
    pub = (await generateKeys('ec-p256')).publicKeyPem;
    await t.admin.create(
      { kind: 'role', metadata: { name: 'dev' }, spec: { allow: { logins: ['deploy'] } } },
      false,
      'admin',
    );
    await t.admin.create({ kind: 'bot', metadata: { name: 'robot' }, spec: { roles: ['dev'] } }, false, 'admin');
  });
  beforeEach(() => t.clock.advance(1000));

  it('finding 5: the copy recovers first (instance B); the real tbot recovering from the same join state with its own key locks the token, and B stops', async () => {
    const { real, attacker } = await joinedThenCopied();
    const b = await attacker.join();
    // the old code took this for the retry of a lost answer, bound a new instance C and left B alive
    await assert.rejects(real.join(), (e) => isMwiError(e, 'JOIN_DENIED') && /used from two places/.test(e.message));
    assert.equal((await status()).bound_bot_instance_id, b.instance_id, 'the token was not rebound');
    await assert.rejects(handleRenew(t.ctx, claimsOf(b.tls_cert), { public_key: pub }, '10.0.0.2'), (e) =>
      isMwiError(e, 'LOCKED'),
    );
    await assert.rejects(handleCerts(t.ctx, claimsOf(b.tls_cert), { public_key: pub }, '10.0.0.2'), (e) =>
      isMwiError(e, 'LOCKED'),
    );
    const lock = (await t.ctx.audit.recent(1000, 'lock.created')).find((e) => e.token_id === name);
    assert.match(lock?.reason ?? '', /asks for another key than that join certified/);
  });

  it('finding 5: a genuine retry (the lost recovery repeated with its key) replaces the unused instance in the same write', async () => {
    const { real } = await joinedThenCopied();
    const pending = (await generateKeys('ec-p256')).publicKeyPem;
    const b = await real.lostJoin(pending);
    const c = await real.join(undefined, pending); // restarted tbot: same join state, its pending key
    assert.notEqual(c.instance_id, b.instance_id);
    assert.equal((await status()).bound_bot_instance_id, c.instance_id);
    // B is gone: in standard mode the key has one instance, B can neither renew nor get certificates
    assert.equal(
      await t.ctx.backend.get(`/bot_instances/robot/${b.instance_id}`),
      undefined,
      'the replaced instance still exists',
    );
    await assert.rejects(handleRenew(t.ctx, claimsOf(b.tls_cert), { public_key: pending }, '10.0.0.2'), (e) =>
      isMwiError(e, 'RENEW_DENIED'),
    );
    await assert.rejects(handleCerts(t.ctx, claimsOf(b.tls_cert), { public_key: pub }, '10.0.0.2'), (e) =>
      isMwiError(e, 'ACCESS_DENIED'),
    );
    await handleCerts(t.ctx, claimsOf(c.tls_cert), { public_key: pub }, '10.0.0.1');
    const ended = (await t.ctx.audit.recent(1000, 'resource.deleted')).find(
      (e) => e.resource === `bot_instance/robot/${b.instance_id}`,
    );
    assert.ok(ended, 'the end of the replaced instance is audited');
    assert.equal(ended.user, 'mwi');
  });

  it('finding 5: if the replaced instance is used between the decision and the write, the write fails and the keypair is seen used from two places', async () => {
    const { real, attacker } = await joinedThenCopied();
    const pending = (await generateKeys('ec-p256')).publicKeyPem;
    const b = await attacker.lostJoin(pending);
    const backend = t.ctx.backend;
    const transact = backend.transact.bind(backend);
    // B is used just before the rebinding write (the race the conditional delete closes)
    backend.transact = async (ops: TxOp[]) => {
      backend.transact = transact;
      await handleHeartbeat(t.ctx, claimsOf(b.tls_cert), {
        hostname: 'h',
        os: 'linux',
        version: '0',
        uptime_seconds: 1,
        one_shot: false,
      });
      return transact(ops);
    };
    try {
      // even with B's key: once B is used, a join from the previous state is a second copy
      await assert.rejects(
        real.join(undefined, pending),
        (e) => isMwiError(e, 'JOIN_DENIED') && /used from two places/.test(e.message),
      );
    } finally {
      backend.transact = transact;
    }
    assert.equal((await status()).bound_bot_instance_id, b.instance_id, 'the token was not rebound');
  });

  it('finding 5: an instance that is no longer the token bound instance cannot renew (RENEW_DENIED, audited)', async () => {
    const secret = await addToken();
    const real = client(t, name, { registration_secret: secret });
    const a = await real.join();
    // the key was rebound elsewhere while A's record survived (e.g. written by an older replica)
    const item = (await t.ctx.backend.get(`/tokens/${name}`))!;
    const token = JSON.parse(item.value) as StoredToken;
    const bk = (token.status!.bound_keypair as Record<string, unknown>) ?? {};
    await t.ctx.backend.put(
      item.key,
      JSON.stringify({
        ...token,
        status: { ...token.status, bound_keypair: { ...bk, bound_bot_instance_id: 'another-instance' } },
      }),
    );
    await assert.rejects(
      handleRenew(t.ctx, claimsOf(a.tls_cert), { public_key: pub }, '10.0.0.3'),
      (e) => isMwiError(e, 'RENEW_DENIED') && !/another-instance/.test(e.message),
    );
    const refused = (await t.ctx.audit.recent(1000, 'bot.renew')).find(
      (e) => e.bot_instance_id === a.instance_id && e.success === false,
    );
    assert.ok(refused, 'the refusal is audited');
    assert.match(refused.reason!, /bound to instance another-instance now/);
    assert.equal(refused.remote_addr, '10.0.0.3');
  });
});
