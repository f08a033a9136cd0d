import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateKeys } from '../../src/crypto/keys.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { anonymousCall } from '../helpers/raw-api.js';

/**
 * Finding 10: token names containing `/` (`../../x`) on /v1/join and /v1/join/challenge
 * answered 500 and logged a stack trace (the storage key builder refused them as programmer
 * misuse). Names are now checked by their shape first: 400 naming the field, nothing logged.
 */
describe('finding 10: token names that cannot be names are refused by shape', () => {
  let c: TestCluster;
  before(async () => {
    c = await startCluster('f10');
  });
  after(async () => c?.stop());

  it('finding 10: /v1/join and /v1/join/challenge answer 400 for token names with "/", never 500', async () => {
    const pub = (await generateKeys('ec-p256')).publicKeyPem;
    const names = ['../../x', 'a/b', '/', 'x/', '..', '.hidden', 'a b', 'ä', 'x'.repeat(129), 'tok\u0000en'];
    for (const token of names) {
      for (const [path, body] of [
        ['/v1/join', { token, join_method: 'github', public_key: pub, payload: { id_token: 'x' } }],
        ['/v1/join/challenge', { token, join_method: 'bound_keypair', payload: { public_keys: ['ssh-ed25519 AAAA'] } }],
      ] as const) {
        const res = await anonymousCall(c.addr, c.caPin, 'POST', path, body);
        assert.equal(res.status, 400, `${path} ${JSON.stringify(token)}: ${res.text}`);
        assert.equal(res.json?.error?.code, 'BAD_REQUEST');
        assert.match(res.json?.error?.message, /^token: expected a token name/);
      }
    }
    // a secret is only ever hashed: any text is acceptable as a `token`-method secret (refused as unknown)
    const secret = await anonymousCall(c.addr, c.caPin, 'POST', '/v1/join', {
      token: '../../x',
      join_method: 'token',
      public_key: pub,
    });
    assert.equal(secret.json?.error?.code, 'JOIN_DENIED');
    assert.doesNotMatch(c.proc.out(), /TypeError|invalid key part|unexpected error/);
  });
});
