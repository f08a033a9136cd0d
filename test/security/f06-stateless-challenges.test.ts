import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { CompactSign } from 'jose';
import { handleChallenge, handleJoin } from '../../src/auth/join.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { sshAuthorizedKey } from '../../src/crypto/ssh.js';
import { isMwiError } from '../../src/errors.js';
import { testContext } from '../helpers/auth-context.js';

type T = Awaited<ReturnType<typeof testContext>>;

/** Every key in the store, with its revision: "nothing was written" is this staying equal. */
async function snapshot(t: T): Promise<string[]> {
  return (await t.ctx.backend.range('/')).map((i) => `${i.key}@${i.revision}`);
}

/**
 * Finding 6 (challenges): each `/v1/join/challenge` stored a row, so an unauthenticated flood
 * naming a bound-keypair token (token names are not secrets) grew the database without bound.
 * Challenges are now sealed into their id: issuing one writes nothing, and a join writes its
 * single-use marker only after the caller's signature verified.
 */
describe('finding 6: join challenges cost no storage until the proof verifies', () => {
  let t: T;
  let key: { private: string; line: string };
  before(async () => {
    t = await testContext();
    await t.admin.create(
      { kind: 'role', metadata: { name: 'dev' }, spec: { allow: { logins: ['deploy'] } } },
      false,
      'admin',
    );
    await t.admin.create({ kind: 'bot', metadata: { name: 'robot' }, spec: { roles: ['dev'] } }, false, 'admin');
    const k = await generateKeys('ed25519');
    key = { private: k.privateKeyPem, line: sshAuthorizedKey(createPublicKey(k.publicKeyPem)) };
    // recovery mode insecure allows several instances per key: only the challenge's single use
    // stands between a replayed join and a second instance
    await t.admin.create(
      {
        kind: 'token',
        metadata: { name: 'bk' },
        spec: {
          join_method: 'bound_keypair',
          bot_name: 'robot',
          bound_keypair: { onboarding: { initial_public_key: key.line }, recovery: { mode: 'insecure' } },
        },
      },
      false,
      'admin',
    );
  });

  const challenge = async (token = 'bk') =>
    (await handleChallenge(
      t.ctx,
      { token, join_method: 'bound_keypair', payload: { public_keys: [key.line] } },
      '-',
    )) as Record<string, any>;
  const sign = (claims: string, pem = key.private) =>
    new CompactSign(Buffer.from(claims)).setProtectedHeader({ alg: 'EdDSA' }).sign(createPrivateKey(pem));
  const join = async (payload: unknown) =>
    handleJoin(
      t.ctx,
      {
        token: 'bk',
        join_method: 'bound_keypair',
        public_key: (await generateKeys('ec-p256')).publicKeyPem,
        ttl_seconds: 60,
        payload,
      },
      '-',
    );

  it('finding 6: 500 challenges for a real token and 500 for unknown ones write nothing', async () => {
    const before = await snapshot(t);
    for (let i = 0; i < 500; i++) await challenge();
    for (let i = 0; i < 500; i++) await challenge(`no-such-token-${i}`);
    assert.deepEqual(await snapshot(t), before);
  });

  it('finding 6: a join with a bad signature writes nothing; the good one writes its marker once and cannot be replayed', async () => {
    const ch = await challenge();
    const before = await snapshot(t);
    const forged = await sign(ch.claims, (await generateKeys('ed25519')).privateKeyPem);
    await assert.rejects(join({ challenge_id: ch.challenge_id, signature: forged }), (e) =>
      isMwiError(e, 'JOIN_DENIED'),
    );
    await assert.rejects(join({ challenge_id: `${ch.challenge_id}x`, signature: forged }), (e) =>
      isMwiError(e, 'JOIN_DENIED'),
    );
    const good = await sign(ch.claims);
    // the right signature spelled another way (finding 3's class): refused, nothing written
    await assert.rejects(
      join({ challenge_id: ch.challenge_id, signature: `${good.slice(0, 20)} ${good.slice(20)}` }),
      (e) => isMwiError(e, 'JOIN_DENIED'),
    );
    assert.deepEqual(await snapshot(t), before, 'a refused proof wrote something');
    await join({ challenge_id: ch.challenge_id, signature: good });
    const instances = async () => (await t.ctx.backend.range('/bot_instances/')).length;
    const n = await instances();
    await assert.rejects(
      join({ challenge_id: ch.challenge_id, signature: good }),
      (e) => isMwiError(e, 'JOIN_DENIED') && /already used/.test(e.message),
    );
    assert.equal(await instances(), n, 'the replay made no instance');
  });

  it("finding 6: a join refused after a valid proof (another key than the bound one, the caller's own) writes nothing, however often it is repeated", async () => {
    // the caller offers its own key: the challenge (a real one or a decoy) names it; it signs
    const own = await generateKeys('ed25519');
    const ownLine = sshAuthorizedKey(createPublicKey(own.publicKeyPem));
    const ch = (await handleChallenge(
      t.ctx,
      { token: 'bk', join_method: 'bound_keypair', payload: { public_keys: [ownLine] } },
      '-',
    )) as Record<string, any>;
    assert.equal(ch.public_key, ownLine);
    const signed = await sign(ch.claims, own.privateKeyPem);
    const before = await snapshot(t);
    for (let i = 0; i < 5; i++) {
      await assert.rejects(
        join({ challenge_id: ch.challenge_id, signature: signed }),
        (e) => isMwiError(e, 'JOIN_DENIED') && /the token is unknown/.test(e.message),
      );
    }
    assert.deepEqual(await snapshot(t), before, 'a refused join wrote something');
  });

  it('finding 6: a challenge id is accepted only exactly as issued (no second spelling of its MAC, no other token, no expiry)', async () => {
    const ch = await challenge();
    const [v, body, mac] = (ch.challenge_id as string).split('.') as [string, string, string];
    // the MAC's last character carries 2 spare bits: each other spelling decodes to the same bytes
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(mac.at(-1)!);
    const respelled = `${v}.${body}.${mac.slice(0, -1)}${alphabet[last ^ 1]}`;
    assert.equal(
      Buffer.from(respelled.split('.')[2]!, 'base64url').equals(Buffer.from(mac, 'base64url')),
      true,
      'same MAC bytes',
    );
    const good = await sign(ch.claims);
    await assert.rejects(join({ challenge_id: respelled, signature: good }), (e) => isMwiError(e, 'JOIN_DENIED'));
    // a body changed to name another token fails the MAC
    const other = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(body, 'base64url').toString()), token_id: 'other' }),
    ).toString('base64url');
    await assert.rejects(join({ challenge_id: `${v}.${other}.${mac}`, signature: good }), (e) =>
      isMwiError(e, 'JOIN_DENIED'),
    );
    // expired
    t.clock.advance(61_000);
    await assert.rejects(join({ challenge_id: ch.challenge_id, signature: good }), (e) => isMwiError(e, 'JOIN_DENIED'));
  });
});
