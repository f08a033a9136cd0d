import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { cli } from '../helpers/procs.js';

describe('generation counter: a copied identity is detected', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster();
  });
  after(async () => cluster?.stop());

  it('a stale copy of the storage dir is refused and the instance locked', async () => {
    const token = await cluster.addBot('copied', ['deploy']);
    const storage = join(cluster.dir, 'bot');
    const copy = join(cluster.dir, 'bot-copy');
    const first = await cli('tbot', [
      'start',
      ...tbotFlags(cluster, token, storage, join(cluster.dir, 'out')),
      '--oneshot',
    ]);
    assert.equal(first.code, 0, first.stderr);
    cpSync(storage, copy, { recursive: true, verbatimSymlinks: true });

    // the original renews (generation 2) and uses the new identity
    const again = await cli('tbot', [
      'start',
      ...tbotFlags(cluster, token, storage, join(cluster.dir, 'out')),
      '--oneshot',
    ]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /generation=2/);

    // the copy still holds generation 1
    const stale = await cli('tbot', [
      'start',
      ...tbotFlags(cluster, token, copy, join(cluster.dir, 'out-copy')),
      '--oneshot',
    ]);
    assert.equal(stale.code, 1);
    assert.match(stale.stderr, /locked: its identity was used from two places/);

    // the instance is now locked for the original too
    const original = await cli('tbot', [
      'start',
      ...tbotFlags(cluster, token, storage, join(cluster.dir, 'out')),
      '--oneshot',
    ]);
    assert.equal(original.code, 1);
    assert.match(original.stderr, /locked/);

    const locked = cluster.audit().filter((e) => e.event === 'instance.locked');
    assert.equal(locked.length, 1);
    assert.match(locked[0]!.reason, /generation mismatch: certificate has 1, server has 2/);
    const locks = JSON.parse(await cluster.tctlOk(['locks', 'ls', '--format', 'json'])) as Array<{
      spec: { target: { bot_instance_id?: string } };
    }>;
    assert.equal(locks.length, 1);
    assert.equal(locks[0]!.spec.target.bot_instance_id, locked[0]!.bot_instance_id);
  });
});
