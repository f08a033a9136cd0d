import assert from 'node:assert/strict';
import { it } from 'node:test';
import { tokenId, tokenKey } from '../../src/auth/tokens.js';
import { isMwiError } from '../../src/errors.js';
import { testContext } from '../helpers/auth-context.js';

const role = { kind: 'role', metadata: { name: 'dev' }, spec: { allow: { logins: ['dev'] } } };

it('addBot with token: an existing token naming the bot is bound, no new token is made; the bot gets max_session_ttl', async () => {
  const { ctx, admin } = await testContext();
  await admin.create(role, false, 'admin');
  // a token made before its bot, as Teleport's docs do it: accepted, with a note
  const token = {
    kind: 'token',
    version: 'v2',
    metadata: { name: 'gh-ci' },
    spec: { roles: ['Bot'], join_method: 'github', bot_name: 'ci', github: { allow: [{ repository: 'octo/app' }] } },
  };
  const created = await admin.create(token, false, 'admin');
  assert.deepEqual(created.notes, [
    'token "gh-ci": bot "ci" does not exist yet: joins with this token are refused until it does ' +
      '(tctl bots add ci --roles ... --token gh-ci)',
  ]);
  const out = await admin.addBot({ name: 'ci', roles: ['dev'], token: 'gh-ci', max_session_ttl: '2h' }, 'admin');
  assert.deepEqual(out, {
    token: 'gh-ci',
    id: 'gh-ci',
    join_method: 'github',
    bot_name: 'ci',
    ca_pins: [ctx.cas.caPin],
  });
  const bot = await admin.get('bot', 'ci');
  assert.equal(bot.kind === 'bot' && bot.spec.max_session_ttl, '2h');
  assert.equal((await admin.list('token')).items.length, 1, 'no new token');
});

it("addBot with token: another bot's token, an unknown one and a token-method token are refused before the bot is written", async () => {
  const { ctx, admin } = await testContext();
  await admin.create(role, false, 'admin');
  await admin.addBot({ name: 'owner', roles: ['dev'] }, 'admin');
  const gh = {
    kind: 'token',
    metadata: { name: 'gh-owner' },
    spec: { join_method: 'github', bot_name: 'owner', allow: [{ repository: 'octo/app' }] },
  };
  await admin.create(gh, false, 'admin');
  const secret = (await admin.addToken({ bot_name: 'owner' }, 'admin')).token;
  const cases: Array<[string, RegExp]> = [
    ['gh-owner', /token "gh-owner" is for bot "owner", not "other"/],
    ['missing', /token "missing" not found/],
    [secret, /single-use token token, whose secret mwi stores only as a hash/],
  ];
  for (const [token, message] of cases) {
    await assert.rejects(
      admin.addBot({ name: 'other', roles: ['dev'], token }, 'admin'),
      (e: unknown) => isMwiError(e) && e.field === 'token' && message.test(e.message),
    );
  }
  assert.equal(await ctx.backend.get('/bots/other'), undefined);
});

it('a token-method token for a bot that does not exist yet is accepted; its note never shows the secret', async () => {
  const { admin } = await testContext();
  const created = await admin.create(
    { kind: 'token', metadata: { name: 'the-secret-value' }, spec: { join_method: 'token', bot_name: 'later' } },
    false,
    'admin',
  );
  assert.equal(created.notes?.length, 1);
  assert.doesNotMatch(created.notes[0]!, /the-secret-value/);
  assert.doesNotMatch(created.name, /the-secret-value/);
});

it('addToken: a chosen secret (--value) is stored as its hash only; labels reach metadata.labels', async () => {
  const { ctx, admin } = await testContext();
  await admin.create(role, false, 'admin');
  await admin.addBot({ name: 'b', roles: ['dev'] }, 'admin');
  const chosen = 'my-chosen-secret-0123';
  const out = await admin.addToken({ bot_name: 'b', name: chosen, labels: { env: 'prod' } }, 'admin');
  assert.equal(out.token, chosen);
  assert.equal(out.id, tokenId(chosen, 'token', ctx.cas.challengeMac));
  const stored = (await ctx.backend.get(tokenKey(out.id)))!.value;
  assert.ok(!stored.includes(chosen), 'the secret itself is not stored');
  assert.deepEqual(JSON.parse(stored).metadata.labels, { env: 'prod' });
  await assert.rejects(admin.addToken({ bot_name: 'b', name: 'short' }, 'admin'), /at least 16 characters/);
  // a platform token's name is no secret: stored as given
  const spec = { allow: [{ repository: 'octo/app' }] };
  const gh = await admin.addToken({ bot_name: 'b', join_method: 'github', name: 'gh-b', spec }, 'admin');
  assert.equal(gh.id, 'gh-b');
});

it("a token with one of Teleport's join methods that mwi lacks is refused saying so", async () => {
  const { admin } = await testContext();
  await assert.rejects(
    admin.create(
      { kind: 'token', metadata: { name: 'aws' }, spec: { join_method: 'tpm', bot_name: 'b' } },
      false,
      'admin',
    ),
    (e: unknown) =>
      isMwiError(e, 'BAD_REQUEST') &&
      e.field === 'spec.join_method' &&
      /"tpm" is Teleport's and not in mwi yet/.test(e.message),
  );
});

it('tokens add, bound_keypair: the token does not expire; the TTL bounds the registration (as in Teleport)', async () => {
  const { ctx, admin } = await testContext();
  const out = await admin.addToken({ bot_name: 'b', join_method: 'bound_keypair', ttl: '10m' }, 'admin');
  const registerBy = new Date(ctx.now() + 600_000).toISOString();
  assert.equal(out.expires, undefined);
  assert.equal(out.must_register_before, registerBy);
  const stored = JSON.parse((await ctx.backend.get(tokenKey(out.id)))!.value);
  assert.equal(stored.metadata.expires, undefined, 'recovery after an outage needs the token later');
  assert.equal(stored.spec.bound_keypair.onboarding.must_register_before, registerBy);
  // a window the spec sets is kept
  const own = await admin.addToken(
    {
      bot_name: 'b',
      join_method: 'bound_keypair',
      spec: { bound_keypair: { onboarding: { must_register_before: '2030-01-01T00:00:00.000Z' } } },
    },
    'admin',
  );
  assert.equal(own.must_register_before, '2030-01-01T00:00:00.000Z');
  // other methods keep their expiry
  const tok = await admin.addToken({ bot_name: 'b', ttl: '10m' }, 'admin');
  assert.equal(tok.expires, registerBy);
  assert.equal(tok.must_register_before, undefined);
});
