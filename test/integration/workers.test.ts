import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { cli, exited, spawnCli, waitFor } from '../helpers/procs.js';
import { tokenId } from '../../src/auth/tokens.js';

/** mwi start --workers 2: two Auth Service processes on one port and one SQLite file. */
describe('several Auth Service workers sharing SQLite', () => {
  let c: TestCluster;
  before(async () => {
    c = await startCluster('workers.example', undefined, ['--workers', '2']);
  });
  after(async () => c?.stop());

  it('a single-use token still has exactly one winner among 20 concurrent joins across processes', async () => {
    const token = await c.addBot('racer', ['deploy']);
    const runs = await Promise.all(Array.from({ length: 20 }, (_, i) => cli('tbot', ['start', ...tbotFlags(c, token, join(c.dir, `b${i}`), join(c.dir, `o${i}`)), '--oneshot'], { timeoutMs: 90_000 })));
    assert.equal(runs.filter((r) => r.code === 0).length, 1);
    const joins = c.audit().filter((e) => e.event === 'bot.join' && e.token_id === tokenId(token, 'token'));
    assert.equal(joins.filter((e) => e.success).length, 1);
    assert.equal(joins.filter((e) => !e.success).length, 19);
  });

  it('a lock created through one worker stops renewals served by the other', async () => {
    const token = await c.addBot('steady', ['deploy']);
    const tbot = spawnCli('tbot', ['start', ...tbotFlags(c, token, join(c.dir, 's'), join(c.dir, 'so')), '--certificate-ttl', '30s', '--renewal-interval', '500ms']);
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
});
