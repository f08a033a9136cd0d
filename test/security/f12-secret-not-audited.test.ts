import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createPublicKey } from 'node:crypto';
import { generateKeys } from '../../src/crypto/keys.js';
import { sshAuthorizedKey } from '../../src/crypto/ssh.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { anonymousCall } from '../helpers/raw-api.js';

/**
 * Finding 12: a `token`-method secret sent with another join_method was written to the audit log
 * as `token_id` (only `token`-method names were hashed). A name that matches no token may be a
 * secret: it is audited only as a keyed fingerprint, never as sent.
 */
describe('finding 12: a secret sent with the wrong join method never reaches a log', () => {
  let c: TestCluster;
  before(async () => {
    c = await startCluster('f12');
  });
  after(async () => c?.stop());

  it('finding 12: the secret appears in neither the audit log nor the Auth Service output; a keyed fingerprint does', async () => {
    const secret = await c.addBot('robot', ['deploy']);
    const pub = (await generateKeys('ec-p256')).publicKeyPem;
    for (const join_method of ['github', 'kubernetes', 'gitlab']) {
      const res = await anonymousCall(c.addr, c.caPin, 'POST', '/v1/join', {
        token: secret,
        join_method,
        public_key: pub,
        payload: { id_token: 'x.y.z' },
      });
      assert.equal(res.json?.error?.code, 'JOIN_DENIED');
    }
    const sshKey = sshAuthorizedKey(createPublicKey((await generateKeys('ed25519')).publicKeyPem));
    await anonymousCall(c.addr, c.caPin, 'POST', '/v1/join/challenge', {
      token: secret,
      join_method: 'bound_keypair',
      payload: { public_keys: [sshKey] },
    });
    await new Promise((r) => setTimeout(r, 100)); // audit lines are written once per turn
    // every audit file there is: the main log and the refusals log
    const log = readdirSync(join(c.dataDir, 'audit'))
      .map((f) => readFileSync(join(c.dataDir, 'audit', f), 'utf8'))
      .join('\n');
    assert.match(log, /token_fingerprint/, 'the refusals were audited');
    assert.ok(!log.includes(secret), 'the secret is in the audit log');
    assert.ok(!c.proc.out().includes(secret), 'the secret is in the Auth Service output');
    const refusals = c.audit().filter((e) => !e.success && (e.event === 'bot.join' || e.event === 'bot.challenge'));
    assert.equal(refusals.length, 4);
    for (const e of refusals) {
      assert.equal(e.token_id, undefined);
      assert.match(String(e.token_fingerprint), /^hmac:[0-9a-f]{16}$/);
    }
    // one name, one fingerprint: refusals can still be correlated
    assert.equal(new Set(refusals.map((e) => e.token_fingerprint)).size, 1);
  });
});
