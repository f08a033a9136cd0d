import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { exited, spawnCli, waitFor } from '../helpers/procs.js';
import { freePort } from '../helpers/sshd.js';

describe('tbot daemon renewal', () => {
  let c: TestCluster;
  let token: string;
  const storage = () => join(c.dir, 'bot');
  const out = () => join(c.dir, 'out');
  before(async () => {
    c = await startCluster();
    token = await c.addBot('steady', ['deploy']);
  });
  after(async () => c?.stop());

  it('renews on the interval, retries with backoff while the Auth Service is away, and recovers', async () => {
    const diagPort = await freePort();
    const diag = (path: string) => fetch(`http://127.0.0.1:${diagPort}${path}`);
    const tbot = spawnCli('tbot', [
      'start',
      ...tbotFlags(c, token, storage(), out()),
      '--certificate-ttl',
      '30s',
      '--renewal-interval',
      '1s',
      '--diag-addr',
      `127.0.0.1:${diagPort}`,
    ]);
    try {
      await waitFor('two renewals', () => (tbot.out().match(/renewed identity/g) ?? []).length >= 2, 15_000);
      assert.ok(existsSync(join(out(), 'tlscert')));
      assert.equal((await diag('/livez')).status, 200);
      assert.equal((await diag('/readyz/identity')).status, 200);
      const metrics = await (await diag('/metrics')).text();
      assert.match(metrics, /^tbot_renewals_total [1-9]\d*$/m);
      assert.match(metrics, /^tbot_service_healthy\{service="identity"\} 1$/m);
      assert.match(metrics, /^tbot_identity_expiry_timestamp_seconds \d+$/m);
      await c.halt();
      await waitFor('failed renewals with growing delays', () => /attempt=3 retry_in=4s/.test(tbot.out()), 20_000);
      const notReady = await diag('/readyz');
      assert.equal(notReady.status, 503);
      assert.match(
        JSON.stringify(await notReady.json()),
        /"identity":\{"status":"unhealthy","reason":"cannot reach the Auth Service/,
      );
      assert.equal((await diag('/readyz/nonexistent')).status, 404);
      assert.match(tbot.out(), /attempt=1 retry_in=1s[\s\S]*attempt=2 retry_in=2s/);
      assert.match(tbot.out(), /cannot reach the Auth Service/);
      const before = (tbot.out().match(/renewed identity/g) ?? []).length;
      await c.resume();
      await waitFor(
        'a renewal after the Auth Service came back',
        () => (tbot.out().match(/renewed identity/g) ?? []).length > before,
        20_000,
      );
      assert.equal(tbot.exitCode, null, 'tbot kept running');
    } finally {
      tbot.kill('SIGTERM');
      assert.equal(await exited(tbot), 0);
    }
  });

  it('a restarted daemon resumes from storage without re-joining (the token is long used)', async () => {
    const tbot = spawnCli('tbot', [
      'start',
      ...tbotFlags(c, token, storage(), out()),
      '--certificate-ttl',
      '30s',
      '--renewal-interval',
      '10s',
    ]);
    try {
      // the first cycle's output too: counting outputs before it is written would take that write for the SIGHUP's
      await waitFor('resume, renew and write', () => /renewed identity[\s\S]*wrote output/.test(tbot.out()), 15_000);
      assert.match(tbot.out(), /resumed identity from storage/);
      assert.doesNotMatch(tbot.out(), /joined/);
      // SIGHUP renews at once, outputs follow
      const n = (tbot.out().match(/wrote output/g) ?? []).length;
      tbot.kill('SIGHUP');
      await waitFor('renewal on SIGHUP', () => (tbot.out().match(/wrote output/g) ?? []).length > n, 10_000);
      assert.match(tbot.out(), /renewing everything now \(signal\)/);
    } finally {
      tbot.kill('SIGTERM');
      await exited(tbot).catch((e) => assert.fail(`${e}: ${tbot.out()}`));
    }
    assert.equal(c.audit().filter((e) => e.event === 'bot.join' && e.success).length, 1);
  });
});
