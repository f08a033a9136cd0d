import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApiClient } from '../../src/api/client.js';
import { PATHS } from '../../src/api/wire.js';
import type { BotState } from '../../src/agent/state.js';
import { handleJoin } from '../../src/auth/join.js';
import { handleCerts } from '../../src/auth/certs.js';
import { handleRenew } from '../../src/auth/renew.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { isMwiError } from '../../src/errors.js';
import { claimsOf, testContext } from '../helpers/auth-context.js';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { cli } from '../helpers/procs.js';

describe('finding 11: removing a bot ends its instances', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster();
  });
  after(async () => cluster?.stop());

  it('finding 11: after tctl bots rm and bots add with the same name, the old tbot storage can neither renew nor get certificates', async () => {
    const token = await cluster.addBot('phoenix', ['deploy']);
    const storage = join(cluster.dir, 'bot11');
    const out = join(cluster.dir, 'out11');
    const first = await cli('tbot', ['start', ...tbotFlags(cluster, token, storage, out), '--oneshot']);
    assert.equal(first.code, 0, first.stderr);
    const old = JSON.parse(readFileSync(join(storage, 'state.json'), 'utf8')) as BotState;

    await cluster.tctlOk(['bots', 'rm', 'phoenix']);
    await cluster.tctlOk(['bots', 'add', 'phoenix', '--roles', 'phoenix-role']);

    // the old storage, with the old token: tbot resumes its identity and renews
    const revived = await cli('tbot', ['start', ...tbotFlags(cluster, token, storage, out), '--oneshot']);
    assert.equal(revived.code, 1, `the old identity renewed under the re-added bot: ${revived.stderr}`);
    assert.match(revived.stderr, /RENEW_DENIED|no longer exists/);

    // and it cannot get certificates with the identity it still holds
    const id = old.identity!;
    const api = new ApiClient({ addrs: [cluster.addr], tls: { ca: id.tls_ca_certs, cert: id.tls_cert, key: id.key } });
    try {
      await assert.rejects(
        api.call('POST', PATHS.certs, { public_key: (await generateKeys('ec-p256')).publicKeyPem }),
        (e) => isMwiError(e, 'ACCESS_DENIED'),
      );
    } finally {
      api.close();
    }
    const listed = JSON.parse(await cluster.tctlOk(['get', 'bot_instances', '--format', 'json'])) as Array<{
      spec: { bot_name: string };
    }>;
    assert.equal(listed.filter((i) => i.spec.bot_name === 'phoenix').length, 0, 'the removed bot still has instances');
  });

  it('finding 11: an instance that joined the removed bot (even one the removal did not delete) is refused under the re-added bot', async () => {
    const t = await testContext();
    await t.admin.create(
      { kind: 'role', metadata: { name: 'dev' }, spec: { allow: { logins: ['deploy'] } } },
      false,
      'admin',
    );
    await t.admin.addBot({ name: 'phoenix', roles: ['dev'] }, 'admin');
    const { token } = await t.admin.addToken({ bot_name: 'phoenix' }, 'admin');
    const pub = (await generateKeys('ec-p256')).publicKeyPem;
    const id = await handleJoin(t.ctx, { token, join_method: 'token', public_key: pub }, '-');
    const claims = claimsOf(id.tls_cert);
    const key = `/bot_instances/phoenix/${id.instance_id}`;
    const instance = (await t.ctx.backend.get(key))!.value;

    await t.admin.remove('bot', 'phoenix', 'admin');
    assert.equal(await t.ctx.backend.get(key), undefined, 'the instance was not deleted with the bot');
    // a join racing the removal wrote its instance after the removal read the bot's instances
    await t.ctx.backend.put(key, instance);
    await t.admin.addBot({ name: 'phoenix', roles: ['dev'] }, 'admin');
    await assert.rejects(handleRenew(t.ctx, claims, { public_key: pub }, '-'), (e) => isMwiError(e, 'RENEW_DENIED'));
    await assert.rejects(handleCerts(t.ctx, claims, { public_key: pub }, '-'), (e) => isMwiError(e, 'ACCESS_DENIED'));
  });

  it('finding 11: the join tokens of a removed bot go with it: a bot added again is not joinable with them', async () => {
    const t = await testContext();
    await t.admin.create(
      { kind: 'role', metadata: { name: 'dev' }, spec: { allow: { logins: ['deploy'] } } },
      false,
      'admin',
    );
    await t.admin.addBot({ name: 'phoenix', roles: ['dev'] }, 'admin');
    await t.admin.addBot({ name: 'other', roles: ['dev'] }, 'admin');
    const { token } = await t.admin.addToken({ bot_name: 'phoenix', ttl: '2h' }, 'admin');
    const { token: kept } = await t.admin.addToken({ bot_name: 'other', ttl: '2h' }, 'admin');
    await t.admin.remove('bot', 'phoenix', 'admin');
    await t.admin.addBot({ name: 'phoenix', roles: ['dev'] }, 'admin');
    const pub = (await generateKeys('ec-p256')).publicKeyPem;
    await assert.rejects(handleJoin(t.ctx, { token, join_method: 'token', public_key: pub }, '-'), (e) =>
      isMwiError(e, 'JOIN_DENIED'),
    );
    // another bot's token is untouched
    await handleJoin(t.ctx, { token: kept, join_method: 'token', public_key: pub }, '-');
  });
});
