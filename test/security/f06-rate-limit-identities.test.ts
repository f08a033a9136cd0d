import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { cli } from '../helpers/procs.js';
import { anonymousCall } from '../helpers/raw-api.js';

/**
 * Finding 6 (rate limits), the class: only an administrator and an unlocked bot instance skip
 * the per-source limits, and an unlocked bot draws on its instance's own bucket. An output
 * certificate (workloads read those from destinations) or the identity of a locked instance used
 * to skip them too, so anyone holding one could flood challenges and joins as if unauthenticated,
 * unlimited.
 */
describe('finding 6: which identities skip the per-source rate limit', () => {
  let c: TestCluster;
  before(async () => {
    // three requests per bucket, then one every 20 s (never within this test): tbot's one-shot
    // run takes one from the source's bucket (its join) and two from its instance's (certificates,
    // heartbeat)
    c = await startCluster('f06i', 'connection_limits:\n  rates:\n    - { period: 20s, average: 1, burst: 3 }\n');
  });
  after(async () => c?.stop());

  it('finding 6: output certificates and locked identities are limited like anonymous callers; an unlocked bot draws on its own bucket', async () => {
    const token = await c.addBot('limited', ['deploy']);
    const storage = join(c.dir, 's');
    const out = join(c.dir, 'o');
    const r = await cli('tbot', ['start', ...tbotFlags(c, token, storage, out), '--oneshot']);
    assert.equal(r.code, 0, r.stderr);
    const state = JSON.parse(readFileSync(join(storage, 'state.json'), 'utf8'));
    const bot = { cert: state.identity.tls_cert as string, key: state.identity.key as string };
    const output = { cert: readFileSync(join(out, 'tlscert'), 'utf8'), key: readFileSync(join(out, 'key'), 'utf8') };
    const challenge = { token: 'nope', join_method: 'bound_keypair', payload: { public_keys: ['ssh-ed25519 AAAA'] } };
    const messages: string[] = [];
    const statuses = async (client?: { cert: string; key: string }, n = 5) => {
      const got: number[] = [];
      for (let i = 0; i < n; i++) {
        const a = await anonymousCall(c.addr, c.caPin, 'POST', '/v1/join/challenge', challenge, client);
        got.push(a.status);
        messages.push(String(a.json?.error?.message));
      }
      return got;
    };
    // the output certificate spends what the source address has left, then is refused
    const asOutput = await statuses(output);
    assert.ok(
      asOutput.slice(2).every((s) => s === 429),
      `an output certificate is limited by its source: ${asOutput.join(',')}`,
    );
    // the bot is not held back by its (now empty) source: its own bucket has one request left
    const asBot = await statuses(bot);
    assert.notEqual(asBot[0], 429, `an unlocked bot was limited by its source address: ${asBot.join(',')}`);
    assert.ok(
      asBot.slice(1).every((s) => s === 429),
      `a bot's own requests are limited too: ${asBot.join(',')}`,
    );
    assert.match(messages.at(-1)!, /too many requests from this bot instance/);
    // locked, the same identity is back on the source's (empty) bucket
    await c.tctlOk(['locks', 'add', '--bot-instance', state.identity.instance_id, '--message', 'f06']);
    await new Promise((res) => setTimeout(res, 300));
    const locked = await statuses(bot, 2);
    assert.ok(
      locked.every((s) => s === 429),
      `a locked identity was not limited: ${locked.join(',')}`,
    );
    assert.match(messages.at(-1)!, /too many requests from this address/);
  });
});
