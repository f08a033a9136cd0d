import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createPublicKey } from 'node:crypto';
import { generateKeys } from '../../src/crypto/keys.js';
import { sshAuthorizedKey } from '../../src/crypto/ssh.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { anonymousCall } from '../helpers/raw-api.js';

/**
 * Finding 7: join and challenge refusals for a locked bot told an unauthenticated caller the bot
 * name and the lock message. Now: the generic JOIN_DENIED an unknown token gets; the reason is
 * in the audit log only.
 */
describe('finding 7: a locked bot is refused without naming the bot or the lock', () => {
  let c: TestCluster;
  before(async () => {
    c = await startCluster('f07');
  });
  after(async () => c?.stop());

  it('finding 7: join and challenge answers for a locked bot equal those for an unknown token', async () => {
    const token = await c.addBot('covert-bot', ['deploy']);
    const bk = join(c.dir, 'bk.yaml');
    writeFileSync(
      bk,
      'kind: token\nversion: v2\nmetadata: { name: covert-bk }\n' +
        'spec: { join_method: bound_keypair, bot_name: covert-bot, ' +
        'bound_keypair: { onboarding: { registration_secret: "0123456789abcdef0123" } } }\n',
    );
    await c.tctlOk(['create', '-f', bk]);
    await c.tctlOk(['locks', 'add', '--bot', 'covert-bot', '--message', 'incident-7731 under investigation']);
    await new Promise((r) => setTimeout(r, 300)); // the lock reaches the cache
    const pub = (await generateKeys('ec-p256')).publicKeyPem;
    const locked = await anonymousCall(c.addr, c.caPin, 'POST', '/v1/join', {
      token,
      join_method: 'token',
      public_key: pub,
    });
    const unknown = await anonymousCall(c.addr, c.caPin, 'POST', '/v1/join', {
      token: '0123456789abcdef0123456789abcdef',
      join_method: 'token',
      public_key: pub,
    });
    assert.equal(locked.status, 403);
    assert.equal(locked.json?.error?.code, 'JOIN_DENIED');
    assert.doesNotMatch(locked.text, /covert-bot|incident-7731|lock/i);
    assert.deepEqual(locked.json, unknown.json, 'a locked bot is refused exactly like an unknown token');
    const sshKey = sshAuthorizedKey(createPublicKey((await generateKeys('ed25519')).publicKeyPem));
    const ch = await anonymousCall(c.addr, c.caPin, 'POST', '/v1/join/challenge', {
      token: 'covert-bk',
      join_method: 'bound_keypair',
      payload: { public_keys: [sshKey] },
    });
    assert.doesNotMatch(ch.text, /covert-bot|incident-7731|lock/i);
    // the administrator still sees why
    const reasons = c
      .audit()
      .filter((e) => !e.success)
      .map((e) => String(e.reason));
    assert.ok(
      reasons.some((r) => /locked: incident-7731/.test(r)),
      reasons.join('\n'),
    );
  });
});
