import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, beforeEach, describe, it } from 'node:test';
import { CompactSign } from 'jose';
import { handleChallenge, handleJoin } from '../../src/auth/join.js';
import { handleRenew } from '../../src/auth/renew.js';
import type { StoredToken } from '../../src/auth/tokens.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { isMwiError } from '../../src/errors.js';
import { boundKeypairClient, newStoredKey } from '../../src/join/bound_keypair/client.js';
import { testContext } from '../helpers/auth-context.js';
import { bkClient, claimsOf } from '../helpers/bk-client.js';

type T = Awaited<ReturnType<typeof testContext>>;

const client = bkClient;
const denied = (re: RegExp) => (e: unknown) => isMwiError(e, 'JOIN_DENIED') && re.test(e.message);

describe('bound keypair joining (Auth Service core + tbot client half)', () => {
  let t: T;
  let n = 0;
  let name: string;
  const status = async () =>
    ((JSON.parse((await t.ctx.backend.get(`/tokens/${name}`))!.value) as StoredToken).status?.bound_keypair ??
      {}) as Record<string, any>;
  const auditReasons = async () =>
    (await t.ctx.audit.recent(10_000))
      .reverse()
      .filter((e) => !e.success && (e.event === 'bot.join' || e.event === 'bot.challenge'))
      .map((e) => e.reason as string);
  const addToken = async (bk: Record<string, unknown> = {}) => {
    name = `bk-${n++}`;
    const out = await t.admin.create(
      {
        kind: 'token',
        metadata: { name },
        spec: { join_method: 'bound_keypair', bot_name: 'robot', bound_keypair: bk },
      },
      false,
      'admin',
    );
    return out.shown_once?.registration_secret;
  };

  before(async () => {
    t = await testContext();
    await t.admin.create(
      { kind: 'role', metadata: { name: 'dev' }, spec: { allow: { logins: ['deploy'] } } },
      false,
      'admin',
    );
    await t.admin.create({ kind: 'bot', metadata: { name: 'robot' }, spec: { roles: ['dev'] } }, false, 'admin');
  });
  beforeEach(() => t.clock.advance(1000));

  it('registration secret: generated and shown once, stored only as a hash, single use', async () => {
    const secret = await addToken();
    assert.match(secret!, /^[0-9a-f]{32}$/);
    const stored = (await t.ctx.backend.get(`/tokens/${name}`))!.value;
    assert.ok(!stored.includes(secret!), 'the secret is stored in clear');
    const a = client(t, name, { registration_secret: secret });
    const res = await a.join();
    assert.equal(res.generation, 1);
    assert.equal((await status()).bound_public_key, a.state.keys![0]!.public_key.split(' ').slice(0, 2).join(' '));
    assert.equal((await status()).recovery_count, 1);
    // a second tbot with the same secret: the key is bound to the first
    await assert.rejects(client(t, name, { registration_secret: secret }).join(), (e) => isMwiError(e, 'JOIN_DENIED'));
  });

  it('a wrong registration secret is refused and binds nothing', async () => {
    await addToken({ onboarding: { registration_secret: 'the-right-secret-0123' } });
    await assert.rejects(
      client(t, name, { registration_secret: 'the-wrong-secret-0123' }).join(),
      denied(/the join was refused/),
    );
    // no secret and no key at all: tbot says so itself, before asking the Auth Service anything
    const before = (await auditReasons()).length;
    await assert.rejects(
      client(t, name, {}).join(),
      (e) =>
        isMwiError(e, 'BAD_CONFIG') &&
        e.field === 'onboarding.bound_keypair' &&
        /no registration secret/.test(e.message),
    );
    assert.equal((await auditReasons()).length, before, 'nothing was sent');
    // a key kept in storage (made before a crash) and no secret: the server refuses, as before
    const keyOnly = client(t, name, {});
    keyOnly.state = { keys: [await newStoredKey('current')] };
    await assert.rejects(keyOnly.join(), denied(/the join was refused/));
    assert.deepEqual(await status(), {});
    assert.match((await auditReasons()).at(-1)!, /registration secret missing/);
    await client(t, name, { registration_secret: 'the-right-secret-0123' }).join();
  });

  it('a registration secret file is read only when tbot registers; missing then, the error names the field and path', async () => {
    const secret = await addToken({ recovery: { limit: 3 } });
    const dir = mkdtempSync(join(tmpdir(), 'bk-secret-'));
    try {
      const path = join(dir, 'registration-secret');
      const field = 'onboarding.bound_keypair.registration_secret_path';
      const c = client(t, name, { registration_secret_file: { path, field } });
      await assert.rejects(
        c.join(),
        (e) => isMwiError(e, 'BAD_CONFIG') && e.field === field && e.message.endsWith(`cannot read ${path}: ENOENT`),
      );
      assert.deepEqual(c.state, {}, 'no key was made');
      writeFileSync(path, `${secret}\n`, { mode: 0o600 });
      await c.join();
      // bound: a later join (here a recovery after the identity expired) needs neither the secret nor its file
      rmSync(path);
      t.clock.advance(61_000);
      await c.join();
      assert.equal((await status()).recovery_count, 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('must_register_before: refused once passed', async () => {
    const secret = await addToken({
      onboarding: { must_register_before: new Date(t.clock.now() + 60_000).toISOString() },
    });
    t.clock.advance(61_000);
    await assert.rejects(client(t, name, { registration_secret: secret }).join(), denied(/refused/));
    assert.match((await auditReasons()).at(-1)!, /registration window closed/);
  });

  it('pre-registered key: joins without a secret; another key is refused', async () => {
    const key = await newStoredKey('current');
    await addToken({ onboarding: { initial_public_key: key.public_key } });
    const other = client(t, name);
    other.state = { keys: [await newStoredKey('current')] };
    // refused like an unknown token (issue #9 finding 8): the reason is audited only
    await assert.rejects(other.join(), denied(/the join was refused/));
    assert.match(
      (await auditReasons()).find((r) => /none of the offered keys/.test(r)) ?? '',
      /none of the offered keys is the key bound to this token/,
    );
    const c = client(t, name);
    c.state = { keys: [key] };
    await c.join();
  });

  it('recovery within the limit, refused past it with a message for the administrator, then allowed after raising it', async () => {
    const secret = await addToken({ recovery: { limit: 2 } });
    const c = client(t, name, { registration_secret: secret });
    await c.join();
    // while the identity is valid, a second join with the key is refused (one instance per key)
    await assert.rejects(c.join(), denied(/another bot instance holds this bound keypair/));
    t.clock.advance(61_000); // identity (60 s) expired
    await c.join();
    assert.equal((await status()).recovery_count, 2);
    t.clock.advance(61_000);
    await assert.rejects(c.join(), denied(/an administrator must raise recovery\.limit/));
    const tok = JSON.parse((await t.ctx.backend.get(`/tokens/${name}`))!.value);
    tok.spec.bound_keypair.recovery.limit = 3;
    delete tok.secret_hash;
    await t.admin.create(tok, true, 'admin');
    assert.equal((await status()).recovery_count, 2, 'raising the limit keeps the status');
    await c.join();
    assert.equal((await status()).recovery_count, 3);
  });

  it('relaxed mode keeps counting but does not enforce the limit', async () => {
    const secret = await addToken({ recovery: { limit: 1, mode: 'relaxed' } });
    const c = client(t, name, { registration_secret: secret });
    for (let i = 0; i < 3; i++) {
      await c.join();
      t.clock.advance(61_000);
    }
    assert.equal((await status()).recovery_count, 3);
  });

  it('a stale join state (a copy of the keypair joined meanwhile) locks the token', async () => {
    const secret = await addToken({ recovery: { limit: 5 } });
    const a = client(t, name, { registration_secret: secret });
    await a.join();
    const copy = client(t, name);
    copy.state = JSON.parse(JSON.stringify(a.state));
    t.clock.advance(61_000);
    const recovered = await a.join(); // the original recovers (sequence 2) and uses its identity
    await handleRenew(
      t.ctx,
      claimsOf(recovered.tls_cert),
      { public_key: (await generateKeys('ec-p256')).publicKeyPem },
      '-',
    );
    t.clock.advance(61_000);
    await assert.rejects(copy.join(), denied(/token locked: the keypair was used from two places/));
    // locked: refused like an unknown token (issue #9 finding 7), the lock in the audit log
    await assert.rejects(a.join(), denied(/the join was refused/));
    assert.match((await auditReasons()).at(-1)!, /locked: join state mismatch/);
  });

  it('hostile input: replayed signature, foreign key, expired challenge, bad keys — refused, audited, nothing bound', async () => {
    const secret = await addToken();
    const key = await newStoredKey('current');
    const joinWith = (payload: unknown) =>
      handleJoin(t.ctx, { token: name, join_method: 'bound_keypair', public_key: await0.pub, payload }, '-');
    const await0 = { pub: (await generateKeys('ec-p256')).publicKeyPem };
    const sign = (claims: string, pem: string) =>
      new CompactSign(Buffer.from(claims)).setProtectedHeader({ alg: 'EdDSA' }).sign(createPrivateKey(pem));
    const challenge = async (keys = [key.public_key]) =>
      (await handleChallenge(
        t.ctx,
        { token: name, join_method: 'bound_keypair', payload: { public_keys: keys } },
        '-',
      )) as Record<string, any>;

    // signed by another key than the one offered
    let ch = await challenge();
    const foreign = await newStoredKey('current');
    // refused like an unknown token (issue #9 finding 8): the reason only in the audit log
    await assert.rejects(
      joinWith({
        challenge_id: ch.challenge_id,
        signature: await sign(ch.claims, foreign.private_key),
        registration_secret: secret,
      }),
      denied(/the join was refused \(the token is unknown/),
    );
    assert.match((await auditReasons()).at(-1)!, /bound key: signature does not verify/);
    // a signature over other claims (e.g. from an earlier challenge)
    const old = await challenge();
    ch = await challenge();
    await assert.rejects(
      joinWith({
        challenge_id: ch.challenge_id,
        signature: await sign(old.claims, key.private_key),
        registration_secret: secret,
      }),
      denied(/refused/),
    );
    assert.match((await auditReasons()).at(-1)!, /signed claims differ from the challenge/);
    // replay: a valid signature, used twice
    ch = await challenge();
    const sig = await sign(ch.claims, key.private_key);
    // a join refused after the proof (no secret) writes nothing, the challenge's use included:
    // answering it again is refused the same way (a used challenge is recorded only with a join
    // that succeeds; issue #9, finding 6), and still binds nothing
    await assert.rejects(
      joinWith({ challenge_id: ch.challenge_id, signature: sig }),
      denied(/the join was refused \(the token is unknown/),
    );
    await assert.rejects(
      joinWith({ challenge_id: ch.challenge_id, signature: sig }),
      denied(/the join was refused \(the token is unknown/),
    );
    assert.match((await auditReasons()).at(-1)!, /registration secret missing/);
    // expired challenge
    ch = await challenge();
    t.clock.advance(61_000);
    await assert.rejects(
      joinWith({
        challenge_id: ch.challenge_id,
        signature: await sign(ch.claims, key.private_key),
        registration_secret: secret,
      }),
      denied(/refused/),
    );
    // alg none / HS256 forged with the public key
    ch = await challenge();
    const none =
      `${Buffer.from('{"alg":"none"}').toString('base64url')}.` + `${Buffer.from(ch.claims).toString('base64url')}.`;
    await assert.rejects(
      joinWith({ challenge_id: ch.challenge_id, signature: none, registration_secret: secret }),
      denied(/refused/),
    );
    ch = await challenge();
    const hs = await new CompactSign(Buffer.from(ch.claims))
      .setProtectedHeader({ alg: 'HS256' })
      .sign(Buffer.from(key.public_key));
    await assert.rejects(
      joinWith({ challenge_id: ch.challenge_id, signature: hs, registration_secret: secret }),
      denied(/refused/),
    );
    // malformed public key, wrong key type (RSA cannot be a bound key)
    await assert.rejects(
      challenge(['ssh-ed25519 AAAAnotbase64!!']),
      (e) => isMwiError(e, 'BAD_REQUEST') || isMwiError(e, 'JOIN_DENIED'),
    );
    const rsa =
      'ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDAx8cGx3LpWZIxqbM0q5aVbd1v6YlA8XaQ' +
      '7sIYqCDb8d4mXmT0tBRjHqxP6FhzS8pE1u3cG+9Zk4oSxZ3bGf2m3U0y6Q6u5ZkC3fHn3nS0C5' +
      'rJ9u3n8mY3Xv6l4uGx3xS8kA+u9nB4YbJd3xk2V0d3wJ5j0f3W1s4Q1hI7o2Yw==';
    await assert.rejects(challenge([rsa]), (e) => isMwiError(e, 'BAD_REQUEST') || isMwiError(e, 'JOIN_DENIED'));
    assert.deepEqual(await status(), {}, 'nothing was bound');
    // and the real key still registers
    const c = client(t, name, { registration_secret: secret });
    c.state = { keys: [key] };
    await c.join();
  });

  it('rotation: a renewal after rotate_after asks for a refresh join that binds a new key; the old key then fails', async () => {
    const secret = await addToken({ recovery: { limit: 5 } });
    const c = client(t, name, { registration_secret: secret });
    const first = await c.join();
    const oldKey = c.state.keys![0]!;
    const tok = JSON.parse((await t.ctx.backend.get(`/tokens/${name}`))!.value);
    tok.spec.bound_keypair.rotate_after = new Date(t.clock.now()).toISOString();
    delete tok.secret_hash;
    await t.admin.create(tok, true, 'admin');
    t.clock.advance(1000);
    const renewed = await handleRenew(
      t.ctx,
      claimsOf(first.tls_cert),
      { public_key: (await generateKeys('ec-p256')).publicKeyPem },
      '-',
    );
    assert.equal(renewed.rejoin_due, true);
    // tbot's refresh join over mTLS with the renewed identity: no recovery used
    const refreshed = await c.join(claimsOf(renewed.tls_cert));
    assert.equal(refreshed.instance_id, first.instance_id);
    assert.equal((refreshed.method_data as any).rotated, true);
    const st = await status();
    assert.equal(st.recovery_count, 1);
    assert.notEqual(st.bound_public_key, oldKey.public_key.split(' ').slice(0, 2).join(' '));
    assert.equal(c.state.keys![0]!.role, 'current');
    assert.equal(c.state.keys![1]!.public_key, oldKey.public_key);
    // a tbot holding only the old key is refused
    const thief = client(t, name);
    thief.state = { keys: [oldKey] };
    t.clock.advance(61_000);
    await assert.rejects(thief.join(), denied(/the join was refused/));
    assert.match((await auditReasons()).at(-2)!, /none of the offered keys is the key bound to this token/);
  });

  it('a tbot killed mid-rotation (new key kept as pending, server bound it, answer lost) recovers on restart', async () => {
    const secret = await addToken({
      recovery: { limit: 5 },
      rotate_after: new Date(t.clock.now() + 5000).toISOString(),
    });
    const c = client(t, name, { registration_secret: secret });
    await c.join();
    t.clock.advance(6000 + 61_000); // rotation due, identity expired: a recovery that also rotates
    const payload = await boundKeypairClient.payload(c.ctx);
    assert.ok((payload as { new_public_key?: string }).new_public_key);
    const pending = (await generateKeys('ec-p256')).publicKeyPem;
    const lost = await handleJoin(
      t.ctx,
      { token: name, join_method: 'bound_keypair', public_key: pending, ttl_seconds: 60, payload },
      '-',
    );
    assert.equal((lost.method_data as { rotated: boolean }).rotated, true);
    // crash: afterJoin never ran; the new key is "pending", the join state is the old one
    assert.deepEqual(
      c.state.keys!.map((k) => k.role),
      ['current', 'pending'],
    );
    // restart, at once (the lost identity is still valid), with tbot's pending TLS key
    const res = await c.join(undefined, pending);
    assert.equal(
      (res.method_data as { recovery_count: number }).recovery_count,
      2,
      'the lost join is not counted twice',
    );
    assert.deepEqual(
      c.state.keys!.map((k) => k.role),
      ['current', 'previous'],
    );
    assert.equal(c.state.keys![0]!.public_key, (payload as { new_public_key: string }).new_public_key);
    assert.equal((await status()).bound_bot_instance_id, res.instance_id);
  });

  it('a lost first-join answer can be retried; once the instance is used it cannot', async () => {
    const secret = await addToken({ recovery: { limit: 5 } });
    const c = client(t, name, { registration_secret: secret });
    const payload = await boundKeypairClient.payload(c.ctx);
    const pending = (await generateKeys('ec-p256')).publicKeyPem;
    await handleJoin(
      t.ctx,
      { token: name, join_method: 'bound_keypair', public_key: pending, ttl_seconds: 60, payload },
      '-',
    );
    // a retry with another key is not the lost join's tbot (which keeps its pending key)
    await assert.rejects(c.join(), denied(/another bot instance holds this bound keypair/));
    const res = await c.join(undefined, pending); // no join state yet: the retry of a lost first join
    assert.equal((res.method_data as { recovery_count: number }).recovery_count, 1);
    await handleRenew(t.ctx, claimsOf(res.tls_cert), { public_key: (await generateKeys('ec-p256')).publicKeyPem }, '-');
    const copy = client(t, name);
    copy.state = { keys: c.state.keys! }; // the key without the join state
    await assert.rejects(copy.join(), denied(/another bot instance holds this bound keypair/));
  });
});
