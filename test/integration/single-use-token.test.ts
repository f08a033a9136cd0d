import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { cli, waitFor } from '../helpers/procs.js';

describe('single-use join token under concurrency', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster();
  });
  after(async () => cluster?.stop());

  it('20 concurrent tbot --oneshot joins with one token: exactly one succeeds', async () => {
    const token = await cluster.addBot('racer', ['deploy']);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        cli(
          'tbot',
          [
            'start',
            ...tbotFlags(cluster, token, join(cluster.dir, `bot-${i}`), join(cluster.dir, `out-${i}`)),
            '--oneshot',
          ],
          { timeoutMs: 90_000 },
        ),
      ),
    );
    const ok = results.filter((r) => r.code === 0);
    const failed = results.filter((r) => r.code !== 0);
    assert.equal(ok.length, 1, results.map((r) => r.stderr).join('\n'));
    assert.equal(failed.length, 19);
    for (const r of failed) {
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /ERROR: the join was refused \(the token is unknown, expired, already used or not valid for this request\)/,
      );
      assert.doesNotMatch(r.stderr, new RegExp(token), 'the token must not be echoed');
    }
    // identical refusals are written once, then as a line with their count when the window
    // closes (issue #9, finding 6): every refusal is accounted for
    const refusals = () =>
      cluster
        .audit()
        .filter((e) => e.event === 'bot.join' && !e.success)
        .reduce((n, e) => n + (e.count ?? 1), 0);
    await waitFor('every refusal in the audit log', () => refusals() >= 19, 10_000);
    const joins = cluster.audit().filter((e) => e.event === 'bot.join');
    assert.equal(joins.filter((e) => e.success).length, 1);
    assert.equal(refusals(), 19);
    for (const e of joins.filter((j) => !j.success)) assert.match(e.reason, /token (already used|not found)/);
    assert.equal(cluster.audit().filter((e) => e.event === 'token.use').length, 1);
  });

  it('the audit log and the database never hold the secret', async () => {
    const token = await cluster.addBot('secretive', ['deploy']);
    const r = await cli('tbot', [
      'start',
      ...tbotFlags(cluster, token, join(cluster.dir, 'bot-s'), join(cluster.dir, 'out-s')),
      '--oneshot',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const { readFileSync, readdirSync } = await import('node:fs');
    assert.doesNotMatch(JSON.stringify(cluster.audit()), new RegExp(token));
    for (const f of readdirSync(cluster.dataDir).filter((n) => n.startsWith('mwi.db'))) {
      assert.equal(readFileSync(join(cluster.dataDir, f)).includes(Buffer.from(token)), false, `${f} holds the token`);
    }
    assert.doesNotMatch(r.stderr, new RegExp(token));
    assert.doesNotMatch(await cluster.tctlOk(['tokens', 'ls']), new RegExp(token));
  });
});
