import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { cli } from '../helpers/procs.js';
import { anonymousCall } from '../helpers/raw-api.js';

/**
 * tbot over a per-source rate limit (connection_limits): a join refused as RATE_LIMITED is sent
 * again after the Retry-After the Auth Service named, so tbots starting together through one
 * address (a NAT gateway) join a little later instead of failing.
 */
describe('tbot joins through the Auth Service rate limit', () => {
  let c: TestCluster;
  before(async () => {
    // one unauthenticated request per source, then one every 2 s
    c = await startCluster('ratelimited', 'connection_limits:\n  rates:\n    - { period: 2s, average: 1, burst: 1 }\n');
  });
  after(async () => c?.stop());

  it('a one-shot join that meets 429 waits for Retry-After and succeeds', async () => {
    const token = await c.addBot('patient', ['deploy']);
    // use up this source's one request
    const first = await anonymousCall(c.addr, c.caPin, 'GET', '/v1/ping');
    const second = await anonymousCall(c.addr, c.caPin, 'GET', '/v1/ping');
    assert.equal(second.status, 429, `the limit is in force: ${first.status} then ${second.status}`);
    const started = Date.now();
    const r = await cli('tbot', ['start', ...tbotFlags(c, token, join(c.dir, 's'), join(c.dir, 'o')), '--oneshot'], {
      timeoutMs: 30_000,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /joined/);
    assert.ok(Date.now() - started >= 900, 'it waited for the limit');
  });
});
