import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { CompactSign } from 'jose';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateKeys } from '../../src/crypto/keys.js';
import { sshAuthorizedKey } from '../../src/crypto/ssh.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { anonymousCall, type RawAnswer } from '../helpers/raw-api.js';

const sshKey = async () => sshAuthorizedKey(createPublicKey((await generateKeys('ed25519')).publicKeyPem));

/** What of a challenge answer may differ between two requests: nothing but the random parts. */
function shape(a: RawAnswer): unknown {
  const claims = typeof a.json?.claims === 'string' ? JSON.parse(a.json.claims) : undefined;
  return {
    status: a.status,
    keys: Object.keys(a.json ?? {}).sort(),
    claimKeys: claims ? Object.keys(claims) : undefined,
    rotate: a.json?.rotate,
    idParts: typeof a.json?.challenge_id === 'string' ? a.json.challenge_id.split('.').length : undefined,
  };
}

/**
 * Finding 8 (bound keypair): the challenge step told an unauthenticated caller whether a token
 * exists ("token not found" vs a challenge) and whether it is bound to another key ("none of the
 * offered keys is the key bound to this token"). Now every well-formed request gets a challenge
 * of the same shape (a decoy when the token is unusable); the join then fails generically.
 */
describe('finding 8: bound-keypair challenges do not tell which tokens exist or which key they are bound to', () => {
  let c: TestCluster;
  before(async () => {
    c = await startCluster('f08');
  });
  after(async () => c?.stop());

  it('finding 8: unknown token, token bound to another key and a usable token answer alike; the join is refused generically', async () => {
    await c.addBot('robot', ['deploy']);
    const bound = await sshKey();
    const file = join(c.dir, 'bk.yaml');
    writeFileSync(
      file,
      [
        'kind: token\nversion: v2\nmetadata: { name: bk-bound }\n' +
          'spec: { join_method: bound_keypair, bot_name: robot, ' +
          'bound_keypair: { onboarding: { initial_public_key: "' +
          bound +
          '" } } }',
        'kind: token\nversion: v2\nmetadata: { name: bk-open }\n' +
          'spec: { join_method: bound_keypair, bot_name: robot, ' +
          'bound_keypair: { onboarding: { registration_secret: "0123456789abcdef0123" } } }',
      ].join('\n---\n'),
    );
    await c.tctlOk(['create', '-f', file]);
    const mine = await sshKey();
    const ask = (token: string) =>
      anonymousCall(c.addr, c.caPin, 'POST', '/v1/join/challenge', {
        token,
        join_method: 'bound_keypair',
        payload: { public_keys: [mine] },
      });
    const unknown = await ask('bk-does-not-exist');
    const otherKey = await ask('bk-bound');
    const usable = await ask('bk-open');
    assert.equal(usable.status, 200, usable.text);
    assert.deepEqual(shape(unknown), shape(usable), `unknown token: ${unknown.text}`);
    assert.deepEqual(shape(otherKey), shape(usable), `bound to another key: ${otherKey.text}`);
    // the decoys even ask for the caller's own key, as a real unbound token does
    for (const a of [unknown, otherKey, usable]) assert.equal(a.json.public_key, mine);
    assert.doesNotMatch(`${unknown.text}${otherKey.text}`, /bound|not found|none of/);
    // the administrator sees the real reasons
    const reasons = c
      .audit()
      .filter((e) => e.event === 'bot.challenge' && !e.success)
      .map((e) => String(e.reason));
    assert.ok(reasons.includes('token not found'), reasons.join('\n'));
    assert.ok(
      reasons.some((r) => /none of the offered keys is the key bound to this token/.test(r)),
      reasons.join('\n'),
    );
  });

  it('finding 8: a join with a missing, forged or expired challenge answers the same for an existing and an unknown token', async () => {
    const pub = (await generateKeys('ec-p256')).publicKeyPem;
    const joinWith = (token: string, payload: unknown) =>
      anonymousCall(c.addr, c.caPin, 'POST', '/v1/join', {
        token,
        join_method: 'bound_keypair',
        public_key: pub,
        payload,
      });
    const offered = await sshKey();
    const payloads = async (token: string) => {
      const ch = (
        await anonymousCall(c.addr, c.caPin, 'POST', '/v1/join/challenge', {
          token,
          join_method: 'bound_keypair',
          payload: { public_keys: [offered] },
        })
      ).json;
      return [
        {},
        { challenge_id: 'garbage' },
        { challenge_id: `${ch.challenge_id.slice(0, -2)}AA`, signature: 'x.y.z' },
        { challenge_id: ch.challenge_id, signature: 'x.y.z' },
      ];
    };
    // the caller's own key: the challenge (real or decoy) names it, the caller signs it, and sends
    // the same join twice (the second answer once differed for an existing token: "already used")
    const own = await generateKeys('ed25519');
    const ownLine = sshAuthorizedKey(createPublicKey(own.publicKeyPem));
    const signedJoin = async (token: string) => {
      const ch = (
        await anonymousCall(c.addr, c.caPin, 'POST', '/v1/join/challenge', {
          token,
          join_method: 'bound_keypair',
          payload: { public_keys: [ownLine] },
        })
      ).json;
      const signature = await new CompactSign(Buffer.from(ch.claims))
        .setProtectedHeader({ alg: 'EdDSA' })
        .sign(createPrivateKey(own.privateKeyPem));
      return [
        await joinWith(token, { challenge_id: ch.challenge_id, signature }),
        await joinWith(token, { challenge_id: ch.challenge_id, signature }),
      ];
    };
    for (const token of ['bk-open', 'bk-bound']) {
      const existing = await signedJoin(token);
      const unknown = await signedJoin('bk-nothing-here');
      assert.deepEqual(
        existing.map((a) => a.json),
        unknown.map((a) => a.json),
        `${token}: ${existing.map((a) => a.text).join(' / ')}`,
      );
    }
    const [forExisting, forUnknown] = [await payloads('bk-open'), await payloads('bk-nothing-here')];
    for (let i = 0; i < forExisting.length; i++) {
      const existing = await joinWith('bk-open', forExisting[i]);
      const unknown = await joinWith('bk-nothing-here', forUnknown[i]);
      assert.equal(existing.status, 403, existing.text);
      assert.deepEqual(existing.json, unknown.json, `case ${i}: ${existing.text} vs ${unknown.text}`);
    }
  });
});
