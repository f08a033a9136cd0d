import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { cli } from '../helpers/procs.js';
import { anonymousCall } from '../helpers/raw-api.js';

/**
 * Finding 6 (rate limits), the class: only an administrator and an unlocked bot instance skip
 * the per-source limits. An output certificate (workloads read those from destinations) or the
 * identity of a locked instance used to skip them too, so anyone holding one could flood
 * challenges and joins as if unauthenticated, unlimited.
 */
describe('finding 6: which identities skip the per-source rate limit', () => {
  let c: TestCluster;
  before(async () => {
    // one request per source, then one every 10 s: the second request from a limited caller is refused
    c = await startCluster('f06i', 'connection_limits:\n  rates:\n    - { period: 10s, average: 1, burst: 1 }\n');
  });
  after(async () => c?.stop());

  it('finding 6: output certificates and locked identities are limited like anonymous callers; an unlocked bot is not', async () => {
    const token = await c.addBot('limited', ['deploy']);
    const storage = join(c.dir, 's');
    const out = join(c.dir, 'o');
    const r = await cli('tbot', ['start', ...tbotFlags(c, token, storage, out), '--oneshot']);
    assert.equal(r.code, 0, r.stderr);
    const state = JSON.parse(readFileSync(join(storage, 'state.json'), 'utf8'));
    const bot = { cert: state.identity.tls_cert as string, key: state.identity.key as string };
    const output = { cert: readFileSync(join(out, 'tlscert'), 'utf8'), key: readFileSync(join(out, 'key'), 'utf8') };
    const challenge = { token: 'nope', join_method: 'bound_keypair', payload: { public_keys: ['ssh-ed25519 AAAA'] } };
    const statuses = async (client?: { cert: string; key: string }) => {
      const got: number[] = [];
      for (let i = 0; i < 4; i++) got.push((await anonymousCall(c.addr, c.caPin, 'POST', '/v1/join/challenge', challenge, client)).status);
      return got;
    };
    // the source's one token may already be spent by tbot's own join: every later one is refused
    assert.ok((await statuses(output)).slice(1).every((s) => s === 429), 'output certificate not limited');
    assert.ok((await statuses(bot)).every((s) => s !== 429), 'an unlocked bot identity was limited');
    await c.tctlOk(['locks', 'add', '--bot-instance', state.identity.instance_id, '--message', 'f06']);
    await new Promise((res) => setTimeout(res, 300));
    assert.ok((await statuses(bot)).every((s) => s === 429), 'a locked identity was not limited');
  });
});
