import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { claimsFromCert } from '../../src/auth/claims.js';
import { handleJoin } from '../../src/auth/join.js';
import { handleCerts } from '../../src/auth/certs.js';
import { handleHeartbeat } from '../../src/auth/heartbeat.js';
import { handleRenew } from '../../src/auth/renew.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { isMwiError } from '../../src/errors.js';
import { claimsOf, testContext } from '../helpers/auth-context.js';
import { legacyTokenId, tokenId, tokenKey } from '../../src/auth/tokens.js';
import { sha256Hex } from '../../src/crypto/keys.js';

type T = Awaited<ReturnType<typeof testContext>>;

describe('token join and renewal rules (Auth Service core, hostile input)', () => {
  let t: T;
  let pub: string;
  const joinWith = (token: string, extra: Record<string, unknown> = {}) =>
    handleJoin(t.ctx, { token, join_method: 'token', public_key: pub, ...extra }, '127.0.0.1');
  const newToken = async (ttl = '30m') =>
    (await t.admin.addToken({ bot_name: 'robot', join_method: 'token', ttl }, 'admin')).token;

  before(async () => {
    t = await testContext();
    pub = (await generateKeys('ec-p256')).publicKeyPem;
    await t.admin.create(
      {
        kind: 'role',
        metadata: { name: 'dev' },
        spec: { options: { max_session_ttl: '2h' }, allow: { logins: ['deploy', '{{internal.logins}}'] } },
      },
      false,
      'admin',
    );
    await t.admin.addBot({ name: 'robot', roles: ['dev'], logins: ['extra'] }, 'admin');
  });

  const refused = (e: unknown) => isMwiError(e, 'JOIN_DENIED') && /the join was refused/.test(e.message);

  it('joins once; the same token then fails', async () => {
    const token = await newToken();
    const id = await joinWith(token);
    assert.equal(id.generation, 1);
    assert.equal(claimsOf(id.tls_cert).bot, 'robot');
    await assert.rejects(joinWith(token), refused);
  });

  it('names a token by a keyed id: the id is not an unkeyed hash of the secret (L9)', async () => {
    const chosen = 'an-admin-chosen-secret-0123';
    const { id } = await t.admin.addToken({ bot_name: 'robot', name: chosen }, 'admin');
    assert.match(id, /^h-[0-9a-f]{16}$/);
    assert.notEqual(id, legacyTokenId(chosen), 'tokens ls would let a reader test guesses offline');
    assert.equal(id, tokenId(chosen, 'token', t.ctx.cas.challengeMac));
    await joinWith(chosen);
  });

  it('a token stored under its pre-keyed id still joins once, is found by its secret, audited by that id', async () => {
    const secret = 'a-token-made-before-ids-were-keyed';
    const old = legacyTokenId(secret);
    const stored = {
      kind: 'token',
      version: 'v2',
      metadata: { name: old, expires: new Date(t.ctx.now() + 600_000).toISOString() },
      spec: { join_method: 'token', bot_name: 'robot', roles: ['Bot'] },
      status: {},
      secret_hash: sha256Hex(secret),
    };
    await t.ctx.backend.create(tokenKey(old), JSON.stringify(stored));
    assert.equal((await t.admin.get('token', secret)).metadata.name, old, 'tctl get by secret');
    const id = await joinWith(secret);
    assert.equal(id.generation, 1);
    assert.equal(await t.ctx.backend.get(tokenKey(old)), undefined, 'used up');
    await assert.rejects(joinWith(secret), refused);
    await new Promise((r) => setTimeout(r, 50)); // the audit log writes on the next turn
    const joins = readFileSync(t.auditPath, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((e) => e.event === 'bot.join' && e.token_id === old);
    // the refused second join found no token: it is audited under the keyed id, like any unknown secret
    assert.deepEqual(
      joins.map((e) => e.success),
      [true],
    );
  });

  it('refuses unknown, wrong-case, truncated and padded secrets', async () => {
    const token = await newToken();
    for (const bad of ['nope', token.toUpperCase(), token.slice(0, -1), `${token} `, `${token}0`])
      await assert.rejects(joinWith(bad), refused, bad);
    await joinWith(token); // still unused after all that
  });

  it('refuses an expired token', async () => {
    const token = await newToken('1m');
    t.clock.advance(61_000);
    await assert.rejects(joinWith(token), refused);
  });

  it('refuses a token presented with another join method', async () => {
    const token = await newToken();
    await assert.rejects(
      handleJoin(t.ctx, { token, join_method: 'bound_keypair', public_key: pub, payload: {} }, '-'),
      refused,
    );
    await assert.rejects(
      handleJoin(t.ctx, { token, join_method: 'tokn', public_key: pub }, '-'),
      (e) => isMwiError(e, 'BAD_REQUEST') && /join_method: unknown join method "tokn"/.test(e.message),
    );
    await joinWith(token);
  });

  it('refuses malformed requests naming the field', async () => {
    const token = await newToken();
    await assert.rejects(handleJoin(t.ctx, null, '-'), (e) => isMwiError(e, 'BAD_REQUEST'));
    await assert.rejects(handleJoin(t.ctx, { token: 7, join_method: 'token' }, '-'), /token: expected a token/);
    await assert.rejects(handleJoin(t.ctx, { token, join_method: 'token', public_key: 'x' }, '-'), /public_key/);
    await assert.rejects(
      handleJoin(t.ctx, { token: 'x'.repeat(600), join_method: 'token', public_key: pub }, '-'),
      /token/,
    );
    await joinWith(token); // a malformed request did not consume it
  });

  it('caps the TTL at the role max_session_ttl and expands {{internal.logins}}', async () => {
    const id = await joinWith(await newToken(), { ttl_seconds: 48 * 3600 });
    assert.equal(Date.parse(id.expires) - t.clock.now(), 2 * 3600 * 1000);
    const certs = await handleCerts(t.ctx, claimsOf(id.tls_cert), { public_key: pub }, '-');
    assert.deepEqual(certs.logins, ['deploy', 'extra']);
  });

  it('renewal increments the generation; the previous one may retry once until the new one is used', async () => {
    const id = await joinWith(await newToken());
    const g1 = claimsOf(id.tls_cert);
    const r2 = await handleRenew(t.ctx, g1, { public_key: pub }, '-');
    assert.equal(r2.generation, 2);
    // answer lost: the same tbot retries with generation 1 and gets generation 2 again
    const retry = await handleRenew(t.ctx, g1, { public_key: pub }, '-');
    assert.equal(retry.generation, 2);
    // generation 2 is used: from now on generation 1 is a copy
    await handleHeartbeat(t.ctx, claimsOf(retry.tls_cert), {
      hostname: 'h',
      os: 'linux',
      version: '0',
      uptime_seconds: 1,
      one_shot: false,
    });
    await assert.rejects(handleRenew(t.ctx, g1, { public_key: pub }, '-'), (e) => isMwiError(e, 'LOCKED'));
    // and the instance is locked for everyone
    await assert.rejects(handleRenew(t.ctx, claimsOf(retry.tls_cert), { public_key: pub }, '-'), (e) =>
      isMwiError(e, 'LOCKED'),
    );
  });

  it('an output certificate, an admin certificate and no certificate cannot renew', async () => {
    const id = await joinWith(await newToken());
    const certs = await handleCerts(t.ctx, claimsOf(id.tls_cert), { public_key: pub }, '-');
    const out = claimsFromCert(new X509Certificate(certs.tls_cert).raw);
    assert.equal(out?.kind, 'output');
    for (const c of [out, { kind: 'admin', user: 'admin' } as const, undefined]) {
      await assert.rejects(handleRenew(t.ctx, c, { public_key: pub }, '-'), (e) => isMwiError(e, 'RENEW_DENIED'));
    }
  });

  it('a lock on the bot stops joins and renewals at once', async () => {
    const token = await newToken();
    const id = await joinWith(await newToken());
    await t.admin.create(
      { kind: 'lock', metadata: { name: 'l1' }, spec: { target: { user: 'bot-robot' }, message: 'incident 42' } },
      false,
      'admin',
    );
    // an unauthenticated caller learns neither the lock nor its message (issue #9 finding 7)
    await assert.rejects(joinWith(token), (e) => refused(e) && !/incident 42|robot/.test((e as Error).message));
    assert.match(String((await t.ctx.audit.recent(1, 'bot.join'))[0]?.reason), /locked: incident 42/);
    await assert.rejects(handleRenew(t.ctx, claimsOf(id.tls_cert), { public_key: pub }, '-'), (e) =>
      isMwiError(e, 'LOCKED'),
    );
    await t.admin.remove('lock', 'l1', 'admin');
    await joinWith(token); // the refused join did not consume the token
  });

  it('a token for a missing bot is refused before it is consumed', async () => {
    const token = await newToken();
    // the bot record alone goes (tctl bots rm also deletes the bot's tokens: finding 11)
    await t.ctx.backend.delete('/bots/robot');
    await assert.rejects(joinWith(token), refused);
    await t.admin.create({ kind: 'bot', metadata: { name: 'robot' }, spec: { roles: ['dev'] } }, false, 'admin');
    await joinWith(token);
  });
});
