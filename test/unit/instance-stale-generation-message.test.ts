// A stale generation is what a copied identity looks like, and also what every bot that renewed
// since the backup looks like after the Auth Service's storage is restored: the message says both.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { handleJoin } from '../../src/auth/join.js';
import { handleRenew } from '../../src/auth/renew.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { isMwiError } from '../../src/errors.js';
import { claimsOf, testContext } from '../helpers/auth-context.js';

it("a stale generation: 'used from two places ... or the storage was restored from a backup'", async () => {
  const t = await testContext();
  const pub = (await generateKeys('ec-p256')).publicKeyPem;
  await t.admin.create(
    { kind: 'role', metadata: { name: 'dev' }, spec: { allow: { logins: ['deploy'] } } },
    false,
    'admin',
  );
  await t.admin.addBot({ name: 'robot', roles: ['dev'] }, 'admin');
  const { token } = await t.admin.addToken({ bot_name: 'robot', join_method: 'token', ttl: '30m' }, 'admin');
  const joined = await handleJoin(t.ctx, { token, join_method: 'token', public_key: pub }, '127.0.0.1');
  const first = claimsOf(joined.tls_cert);
  const second = await handleRenew(t.ctx, first, { public_key: pub }, '-');
  await handleRenew(t.ctx, claimsOf(second.tls_cert), { public_key: pub }, '-');
  await assert.rejects(
    handleRenew(t.ctx, first, { public_key: pub }, '-'),
    (e) =>
      isMwiError(e, 'LOCKED') &&
      /used from two places \(generation counter\), or the Auth Service's storage was restored from a backup$/.test(
        e.message,
      ),
  );
});
