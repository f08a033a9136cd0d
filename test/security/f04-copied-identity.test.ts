import assert from 'node:assert/strict';
import { createHash, createPublicKey } from 'node:crypto';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApiClient } from '../../src/api/client.js';
import { PATHS, type BotCredentialResponse } from '../../src/api/wire.js';
import type { BotState } from '../../src/agent/state.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { isMwiError } from '../../src/errors.js';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { cli, waitFor } from '../helpers/procs.js';

const readState = (dir: string) => JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as BotState;

/** An API client speaking with the identity stored in a tbot storage dir. */
function clientOf(cluster: TestCluster, state: BotState): ApiClient {
  const id = state.identity!;
  return new ApiClient({ addrs: [cluster.addr], tls: { ca: id.tls_ca_certs, cert: id.tls_cert, key: id.key } });
}

const fingerprint = (pem: string) =>
  `sha256:${createHash('sha256')
    .update(createPublicKey(pem).export({ type: 'spki', format: 'der' }))
    .digest('hex')}`;

describe('finding 4: a copied identity cannot renew once without being noticed', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster();
  });
  after(async () => cluster?.stop());

  it('finding 4: the copy renews first with its own key; the real tbot renewing from the same generation locks the instance', async () => {
    const token = await cluster.addBot('copied4', ['deploy']);
    const storage = join(cluster.dir, 'bot4');
    const first = await cli('tbot', [
      'start',
      ...tbotFlags(cluster, token, storage, join(cluster.dir, 'out4')),
      '--oneshot',
    ]);
    assert.equal(first.code, 0, first.stderr);

    // the attacker holds a copy of state.json at generation 1 and renews first, with its own key
    const copy = readState(storage);
    assert.equal(copy.identity!.generation, 1);
    const attackerKey = await generateKeys('ec-p256');
    const api = clientOf(cluster, copy);
    const stolen = await api.call<BotCredentialResponse>('POST', PATHS.renew, {
      public_key: attackerKey.publicKeyPem,
      ttl_seconds: 3600,
    });
    api.close();
    assert.equal(stolen.generation, 2);

    // the real tbot's next renewal (from generation 1, with another key) is not a lost answer
    const real = await cli('tbot', [
      'start',
      ...tbotFlags(cluster, token, storage, join(cluster.dir, 'out4')),
      '--oneshot',
    ]);
    assert.equal(real.code, 1, `the real tbot's renewal was accepted as a retry: ${real.stderr}`);
    assert.match(real.stderr, /locked: its identity was used from two places/);

    const events = cluster.audit();
    const locked = events.filter((e) => e.event === 'instance.locked' && e.bot_name === 'copied4');
    assert.equal(locked.length, 1, 'the instance is locked and the lock audited');
    assert.match(locked[0]!.reason, /generation mismatch: certificate has 1, server has 2, issued to another key/);
    assert.ok(locked[0]!.remote_addr, 'the lock says where the request came from');
    assert.equal(locked[0]!.bot_instance_id, copy.identity!.instance_id);

    // every renewal, accepted or refused, says from where and for which key
    const renews = events.filter((e) => e.event === 'bot.renew' && e.bot_name === 'copied4');
    const ok = renews.find((e) => e.success === true)!;
    assert.equal(ok.public_key_fingerprint, fingerprint(attackerKey.publicKeyPem));
    assert.match(ok.remote_addr, /127\.0\.0\.1/);
    const refused = renews.find((e) => e.success === false)!;
    assert.ok(refused, 'the refused renewal is audited');
    assert.match(refused.public_key_fingerprint, /^sha256:[0-9a-f]{64}$/);
    assert.notEqual(refused.public_key_fingerprint, ok.public_key_fingerprint);
    assert.match(refused.remote_addr, /127\.0\.0\.1/);

    // and the attacker's generation is locked too
    const again = clientOf(cluster, {
      ...copy,
      identity: { ...copy.identity!, tls_cert: stolen.tls_cert, key: attackerKey.privateKeyPem },
    });
    await assert.rejects(
      again.call('POST', PATHS.renew, { public_key: (await generateKeys('ec-p256')).publicKeyPem }),
      (e) => isMwiError(e, 'LOCKED'),
    );
    again.close();
  });

  it('finding 4: a certificate request from the previous generation after a renewal by another holder locks the instance', async () => {
    const token = await cluster.addBot('copied4b', ['deploy']);
    const storage = join(cluster.dir, 'bot4b');
    assert.equal(
      (await cli('tbot', ['start', ...tbotFlags(cluster, token, storage, join(cluster.dir, 'out4b')), '--oneshot']))
        .code,
      0,
    );
    const copy = readState(storage);
    const api = clientOf(cluster, copy);
    await api.call<BotCredentialResponse>('POST', PATHS.renew, {
      public_key: (await generateKeys('ec-p256')).publicKeyPem,
    });
    api.close();
    // the copy's twin keeps using generation 1 for certificates instead of renewing (a new
    // connection: the one that renewed speaks as generation 2 from then on)
    const twin = clientOf(cluster, copy);
    await assert.rejects(
      twin.call('POST', PATHS.certs, { public_key: (await generateKeys('ec-p256')).publicKeyPem }),
      (e) => isMwiError(e, 'LOCKED'),
    );
    twin.close();
    // the audit log is written asynchronously: wait for the line
    await waitFor('the lock event', () =>
      cluster.audit().some((e) => e.event === 'instance.locked' && e.bot_name === 'copied4b'),
    );
    assert.equal(cluster.audit().filter((e) => e.event === 'instance.locked' && e.bot_name === 'copied4b').length, 1);
  });

  it('finding 4: a genuine lost answer (tbot kept its pending key) is still accepted as a retry', async () => {
    const token = await cluster.addBot('lost4', ['deploy']);
    const storage = join(cluster.dir, 'bot4c');
    const out = join(cluster.dir, 'out4c');
    assert.equal((await cli('tbot', ['start', ...tbotFlags(cluster, token, storage, out), '--oneshot'])).code, 0);
    const saved = join(cluster.dir, 'bot4c-before');
    cpSync(storage, saved, { recursive: true, verbatimSymlinks: true });

    // tbot persists its pending key, sends the renewal, and dies before storing the answer
    const state = readState(storage);
    const pending = await generateKeys('ec-p256');
    writeFileSync(
      join(storage, 'state.json'),
      JSON.stringify({ ...state, pending: { private_key: pending.privateKeyPem, public_key: pending.publicKeyPem } }),
    );
    const api = clientOf(cluster, state);
    const lost = await api.call<BotCredentialResponse>('POST', PATHS.renew, {
      public_key: pending.publicKeyPem,
      ttl_seconds: 3600,
    });
    api.close();
    assert.equal(lost.generation, 2);

    // restarted, it retries with the same key and carries on
    const restarted = await cli('tbot', ['start', ...tbotFlags(cluster, token, storage, out), '--oneshot']);
    assert.equal(restarted.code, 0, restarted.stderr);
    assert.match(restarted.stderr, /renewed identity.*generation=2/);
    const after = readState(storage);
    assert.equal(after.pending, undefined, 'the pending key is cleared once the answer is stored');
    assert.equal(after.identity!.key, pending.privateKeyPem);
    const retried = cluster
      .audit()
      .filter((e) => e.event === 'bot.renew' && e.bot_name === 'lost4' && e.retried === true);
    assert.equal(retried.length, 1);
    assert.equal(retried[0]!.public_key_fingerprint, fingerprint(pending.publicKeyPem));
    assert.equal(cluster.audit().filter((e) => e.event === 'instance.locked' && e.bot_name === 'lost4').length, 0);

    // the same retry from a second copy of the pre-crash storage, now that generation 2 is in use, is a copy
    const twin = await cli('tbot', [
      'start',
      ...tbotFlags(cluster, token, saved, join(cluster.dir, 'out4c-twin')),
      '--oneshot',
    ]);
    assert.equal(twin.code, 1, twin.stderr);
    assert.match(twin.stderr, /locked/);
  });
});
