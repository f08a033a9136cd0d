import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { cli, exited, spawnCli, waitFor } from '../helpers/procs.js';
import { ApiClient } from '../../src/api/client.js';
import { PATHS } from '../../src/api/wire.js';
import { readIdentityFile } from '../../src/api/local.js';
import { generateKeys } from '../../src/crypto/keys.js';

/** mwi start --workers 2: two Auth Service processes on one port and one SQLite file. */
describe('several Auth Service workers sharing SQLite', () => {
  let c: TestCluster;
  before(async () => {
    c = await startCluster('workers.example', undefined, ['--workers', '2']);
  });
  after(async () => c?.stop());

  it('a single-use token still has exactly one winner among 20 concurrent joins across processes', async () => {
    const token = await c.addBot('racer', ['deploy']);
    // the token's id (a keyed hash of the secret: only the Auth Service can compute it)
    const listed = JSON.parse((await c.tctl(['tokens', 'ls', '--format', 'json'])).stdout) as {
      metadata: { name: string };
      spec: { bot_name: string };
    }[];
    const id = listed.find((t) => t.spec.bot_name === 'racer')!.metadata.name;
    const runs = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        cli('tbot', ['start', ...tbotFlags(c, token, join(c.dir, `b${i}`), join(c.dir, `o${i}`)), '--oneshot'], {
          timeoutMs: 90_000,
        }),
      ),
    );
    assert.equal(runs.filter((r) => r.code === 0).length, 1);
    const joins = () => c.audit().filter((e) => e.event === 'bot.join' && e.token_id === id);
    // identical refusals are written once, then counted (issue #9, finding 6)
    const refusals = () =>
      joins()
        .filter((e) => !e.success)
        .reduce((n, e) => n + (e.count ?? 1), 0);
    await waitFor('every refusal in the audit log', () => refusals() >= 19, 10_000);
    assert.equal(joins().filter((e) => e.success).length, 1);
    assert.equal(refusals(), 19);
  });

  it('a lock created through one worker stops renewals served by the other', async () => {
    const token = await c.addBot('steady', ['deploy']);
    const tbot = spawnCli('tbot', [
      'start',
      ...tbotFlags(c, token, join(c.dir, 's'), join(c.dir, 'so')),
      '--certificate-ttl',
      '30s',
      '--renewal-interval',
      '500ms',
    ]);
    try {
      await waitFor('renewals', () => (tbot.out().match(/renewed identity/g) ?? []).length >= 2, 15_000);
      // several tctl calls: with two workers taking turns, both learn of the lock through storage
      await c.tctlOk(['locks', 'add', '--bot', 'steady', '--message', 'stop now']);
      assert.equal(await exited(tbot, 10_000), 1);
      assert.match(tbot.out(), /locked: stop now/);
    } finally {
      if (tbot.exitCode === null) tbot.kill('SIGKILL');
    }
    // (propagation between processes is tested directly in test/unit/storage.test.ts)
  });

  it('read your writes across workers: a bot created through one is usable through the other at once', async () => {
    const id = readIdentityFile(join(c.dataDir, 'admin', 'identity.json'))!;
    // two clients, two connections: the primary hands connections to the workers in turn
    const [a, b] = [0, 1].map(
      () => new ApiClient({ addrs: [c.addr], tls: { ca: id.ca_certs, cert: id.cert, key: id.key } }),
    );
    try {
      for (let i = 0; i < 20; i++) {
        const role = `fresh-role-${i}`;
        await a!.call('POST', '/v1/admin/resources', {
          resource: { kind: 'role', metadata: { name: role }, spec: { allow: { logins: ['x'] } } },
        });
        // the role just written, from the other connection: no waiting for the change log
        await b!.call('POST', '/v1/admin/bots', { name: `fresh-${i}`, roles: [role] });
        const t = await a!.call<{ token: string }>('POST', '/v1/admin/tokens', {
          bot_name: `fresh-${i}`,
          join_method: 'token',
          ttl: '1h',
        });
        const keys = await generateKeys('ec-p256');
        const anon = new ApiClient({ addrs: [c.addr], tls: { ca: [id.ca_certs[0]!] } });
        const joined = await anon
          .call<{ bot_name: string }>('POST', PATHS.join, {
            token: t.token,
            join_method: 'token',
            public_key: keys.publicKeyPem,
          })
          .finally(() => anon.close());
        assert.equal(joined.bot_name, `fresh-${i}`);
      }
    } finally {
      a!.close();
      b!.close();
    }
  });
});
