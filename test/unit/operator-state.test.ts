import assert from 'node:assert/strict';
import { it } from 'node:test';
import { COUNTERS, Metrics, startDiagnostics } from '../../src/agent/diagnostics.js';
import { uniqueSans } from '../../src/auth/local-identity.js';
import { isMwiError } from '../../src/errors.js';
import { createLogger } from '../../src/util/log.js';
import { ioReason } from '../../src/util/io-reason.js';
import { testContext } from '../helpers/auth-context.js';

const instance = (bot: string, id: string, token: string) => ({
  kind: 'bot_instance',
  version: 'v1',
  metadata: { name: id },
  spec: { bot_name: bot, instance_id: id },
  status: { initial_authentication: { join_token_name: token } },
});

const lock = (name: string, target: Record<string, string>, message = '') => ({
  kind: 'lock',
  version: 'v2',
  metadata: { name },
  spec: { target, message },
});

it("admin listings of bots and bot instances say which a lock holds: the bot's, the instance's, the join token's", async () => {
  const { admin, ctx, clock } = await testContext();
  await admin.create({ kind: 'role', metadata: { name: 'dev' }, spec: {} }, false, 'admin');
  for (const b of ['free', 'held', 'other'])
    await admin.create({ kind: 'bot', metadata: { name: b }, spec: { roles: ['dev'] } }, false, 'admin');
  const ids = ['00000000-0000-4000-8000-00000000000a', '00000000-0000-4000-8000-00000000000b'];
  await ctx.backend.put(`/bot_instances/free/${ids[0]}`, JSON.stringify(instance('free', ids[0]!, 'tok-a')));
  await ctx.backend.put(`/bot_instances/other/${ids[1]}`, JSON.stringify(instance('other', ids[1]!, 'tok-b')));
  assert.equal((await admin.list('bot')).locked, undefined, 'no lock, no field');
  await admin.create(lock('l1', { user: 'bot-held' }, 'incident 7'), false, 'admin');
  await admin.create(lock('l2', { join_token: 'tok-b' }), false, 'admin');
  const ended = { target: { user: 'bot-free' }, message: 'old', expires: new Date(clock.now() - 1000).toISOString() };
  await admin.create({ ...lock('l3', {}), spec: ended }, false, 'admin');
  await new Promise((r) => setImmediate(r)); // the lock cache follows the storage watch
  assert.deepEqual((await admin.list('bot')).locked, { held: 'incident 7' });
  assert.deepEqual((await admin.list('bot_instance')).locked, { [ids[1]!]: 'l2' });
  // the raw JSON listing (the route's) says the same
  const raw = JSON.parse((await admin.listJson('bots')).text) as { locked?: Record<string, string> };
  assert.deepEqual(raw.locked, { held: 'incident 7' });
});

it("ttl: a duration above zero, said so; a token's name is never repeated in NOT_FOUND", async () => {
  const { admin } = await testContext();
  await assert.rejects(
    admin.addToken({ bot_name: 'x', ttl: '0s' }, 'admin'),
    (e) => isMwiError(e, 'BAD_REQUEST') && e.message === 'ttl: must be more than 0 (got "0s")',
  );
  await assert.rejects(
    admin.addToken({ bot_name: 'x', ttl: '5x' }, 'admin'),
    (e) => isMwiError(e, 'BAD_REQUEST') && /^ttl: expected a duration such as 30m or 24h \(got "5x"\)/.test(e.message),
  );
  const secret = '0123456789abcdef0123456789abcdef';
  for (const op of [admin.remove('token', secret, 'admin'), admin.get('token', secret)])
    await assert.rejects(op, (e) => {
      assert.ok(isMwiError(e, 'NOT_FOUND'));
      assert.doesNotMatch(e.message, /hidden|0123456789abcdef/);
      assert.match(e.message, /^no such token: no token has this id, nor \(method token\) this secret; tctl tokens ls/);
      return true;
    });
});

it('bots add on an existing bot suggests what changes it, not a --force it does not have', async () => {
  const { admin } = await testContext();
  await admin.create({ kind: 'role', metadata: { name: 'dev' }, spec: {} }, false, 'admin');
  await admin.addBot({ name: 'robot', roles: ['dev'] }, 'admin');
  await assert.rejects(admin.addBot({ name: 'robot', roles: ['dev'] }, 'admin'), (e) => {
    assert.ok(isMwiError(e, 'ALREADY_EXISTS'));
    assert.doesNotMatch(e.message, /--force/);
    assert.match(e.message, /^bot "robot" already exists: tctl bots update "robot" changes its roles and logins/);
    return true;
  });
});

it("the Auth Service's certificate names each SAN once (the listen address and host name repeat the defaults)", () => {
  assert.deepEqual(
    uniqueSans({
      dns: ['auth.mwi.cluster.local', 'localhost', 'LocalHost', 'host.example', 'host.example.', 'localhost'],
      ips: ['127.0.0.1', '::1', '127.0.0.1', '0:0:0:0:0:0:0:1', '10.0.0.1'],
    }),
    { dns: ['auth.mwi.cluster.local', 'localhost', 'host.example'], ips: ['127.0.0.1', '::1', '10.0.0.1'] },
  );
});

it("tbot's /metrics has every counter from the start, at 0", async () => {
  const quiet = createLogger('test', 'error');
  const metrics = new Metrics();
  const diag = await startDiagnostics('127.0.0.1:0', { services: new Map(), metrics }, quiet);
  try {
    const text = await (await fetch(`http://${diag.address}/metrics`)).text();
    for (const c of COUNTERS) {
      assert.match(text, new RegExp(`^# TYPE ${c} counter$`, 'm'));
      assert.match(text, new RegExp(`^${c} 0$`, 'm'));
    }
    metrics.inc('tbot_renewals_total');
    const after = await (await fetch(`http://${diag.address}/metrics`)).text();
    assert.match(after, /^tbot_renewals_total 1$/m);
    assert.equal(after.match(/^tbot_renewals_total /gm)?.length, 1, 'one line per counter');
  } finally {
    await diag.close();
  }
});

it('ioReason: the errno said in words, with its code', () => {
  const enoent = Object.assign(new Error('x'), { code: 'ENOENT' });
  assert.equal(ioReason(enoent), 'no such file or directory (ENOENT)');
  assert.equal(ioReason(Object.assign(new Error('x'), { code: 'EACCES' })), 'permission denied (EACCES)');
  assert.equal(ioReason(new Error('not an identity file')), 'not an identity file');
});
