// Acceptance of issue #15: two Auth Service replicas (two `mwi start` processes) on one
// PostgreSQL database. Every atomic rule holds across them, and each follows the other's changes.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isMwiError } from '../../src/errors.js';
import { startHa, TestBot, type HaCluster } from '../helpers/postgres-cluster.js';
import { waitFor } from '../helpers/procs.js';

describe('two replicas on one PostgreSQL database', () => {
  let ha: HaCluster;
  let a: string[];
  let b: string[];
  before(async () => {
    ha = await startHa();
    a = [ha.replicas[0]!.addr];
    b = [ha.replicas[1]!.addr];
  });
  after(async () => ha?.stop());

  it('share one set of CAs: tctl status on each prints the same CA pin', async () => {
    for (const r of ha.replicas) {
      const status = JSON.parse(await r.tctlOk(['status', '--format', 'json']));
      assert.equal(status.ca_pin, ha.caPin);
    }
    const db = new URL(ha.storage).pathname.slice(1);
    const cas = await ha.pg.sql("SELECT key FROM mwi_kv WHERE key LIKE '/cas/%' ORDER BY key", db);
    assert.deepEqual(
      cas.rows.map((r) => r.key),
      [
        '/cas/bound-keypair-state',
        '/cas/db',
        '/cas/db-client',
        '/cas/jwt',
        '/cas/spiffe',
        '/cas/ssh-host',
        '/cas/ssh-user',
        '/cas/tls-host',
        '/cas/tls-user',
      ],
    );
  });

  it('200 concurrent joins with 50 single-use tokens over both: each token used once, 150 refused, nothing lost', async () => {
    await ha.addBot('racer');
    const tokens = await ha.tokens('racer', 50);
    const clients = [ha.joinClient(0), ha.joinClient(1)];
    // each token four times, twice through each replica, all at once
    const results = await Promise.allSettled(
      Array.from({ length: 200 }, async (_, i) => {
        const token = tokens[Math.floor(i / 4)]!;
        const bot = await TestBot.join(ha.hostCA, [ha.replicas[i % 2]!.addr], token);
        return { token, instance: bot.cred.instance_id };
      }),
    );
    for (const c of clients) c.close();
    const ok = results.filter((r) => r.status === 'fulfilled').map((r) => r.value);
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(ok.length, 50, refused.map((r) => String(r.reason)).join('\n'));
    assert.equal(new Set(ok.map((o) => o.token)).size, 50, 'each token used exactly once');
    assert.equal(refused.length, 150);
    for (const r of refused) assert.ok(isMwiError(r.reason, 'JOIN_DENIED'), String(r.reason));
    // every acknowledged join has its instance, whichever replica is asked
    for (const r of ha.replicas) {
      const listed = JSON.parse(await r.tctlOk(['bots', 'instances', 'ls', 'racer', '--format', 'json']));
      const ids = new Set(listed.map((i: { metadata: { name: string } }) => i.metadata.name));
      assert.equal(ids.size, 50);
      for (const o of ok) assert.ok(ids.has(o.instance), `instance ${o.instance} is missing`);
    }
    // the audit log is shared: either replica shows every join, made through either of them
    // (identical refusals within a second are one event with their count, once the second is over)
    await new Promise((r) => setTimeout(r, 1200));
    for (const r of ha.replicas) {
      const ls = async (type: string) =>
        JSON.parse(await r.tctlOk(['audit', 'ls', '--type', type, '--limit', '500', '--format', 'json']));
      assert.equal((await ls('token.use')).length, 50);
      const joins = await ls('bot.join');
      assert.equal(joins.filter((e: { success: boolean }) => e.success).length, 50);
      const refusals = joins.filter((e: { success: boolean }) => !e.success);
      assert.equal(
        refusals.reduce((n: number, e: { count?: number }) => n + (e.count ?? 1), 0),
        150,
      );
      const pids = new Set(joins.map((e: { pid: number }) => e.pid));
      assert.deepEqual(pids, new Set(ha.replicas.map((x) => x.proc.pid)), 'events of both replicas');
    }
  });

  it('a bot renewing through both replicas alternately keeps one generation counter; a copy is caught on either', async () => {
    await ha.addBot('roamer');
    for (const copyVia of [b, a]) {
      const [token] = await ha.tokens('roamer', 1);
      const bot = await TestBot.join(ha.hostCA, a, token!);
      assert.equal(bot.cred.generation, 1);
      for (let g = 2; g <= 6; g++) assert.equal((await bot.renew(g % 2 ? a : b)).generation, g);
      const copy = bot.snapshot();
      assert.equal((await bot.renew(copyVia === b ? a : b)).generation, 7);
      // the copy holds generation 6: whichever replica it reaches, the instance is locked there at
      // once, and on the other replica as soon as the lock reaches it (within 1 s)
      await assert.rejects(bot.renew(copyVia, copy), (e) => isMwiError(e, 'LOCKED'));
      await assert.rejects(bot.renew(copyVia), (e) => isMwiError(e, 'LOCKED'));
      const other = copyVia === b ? a : b;
      const t0 = performance.now();
      await waitFor(
        'the lock on the other replica',
        () =>
          bot.renew(other).then(
            () => false,
            (e) => isMwiError(e, 'LOCKED'),
          ),
        1000,
        20,
      );
      assert.ok(performance.now() - t0 < 1000);
    }
  });

  it('a lock made through replica A stops joins and renewals through replica B within 1 s', async () => {
    await ha.addBot('lockme');
    const [first, second] = await ha.tokens('lockme', 2);
    const bot = await TestBot.join(ha.hostCA, b, first!);
    await bot.renew(b);
    // made through A's admin API, so that the time is the lock's, not a tctl process start's
    const lock = {
      kind: 'lock',
      version: 'v2',
      metadata: { name: 'lockme' },
      spec: { target: { user: 'bot-lockme' } },
    };
    await ha.replicas[0]!.admin.call('POST', '/v1/admin/resources', { resource: lock });
    const t0 = performance.now();
    let renewedAfter = 0;
    for (;;) {
      try {
        await bot.renew(b);
        renewedAfter++;
      } catch (err) {
        assert.ok(isMwiError(err, 'LOCKED'), String(err));
        break;
      }
      assert.ok(performance.now() - t0 < 1000, 'still renewing through B 1 s after the lock');
      await new Promise((r) => setTimeout(r, 10));
    }
    const delay = performance.now() - t0;
    console.log(`lock through A refused through B after ${delay.toFixed(0)} ms (${renewedAfter} renewals meanwhile)`);
    assert.ok(delay < 1000);
    await assert.rejects(
      TestBot.join(ha.hostCA, b, second!),
      (e) => isMwiError(e, 'LOCKED') || isMwiError(e, 'JOIN_DENIED'),
    );
  });
});
