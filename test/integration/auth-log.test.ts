import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  addJoinToken,
  joinFlags,
  oidcOverride,
  startCluster,
  tbotFlags,
  type TestCluster,
} from '../helpers/cluster.js';
import { cli, waitFor } from '../helpers/procs.js';
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';
import { anonymousCall } from '../helpers/raw-api.js';
import { generateKeys } from '../../src/crypto/keys.js';

const GITLAB = 'https://gitlab.com';

type Line = Record<string, any>;

/** The Auth Service's JSON log lines so far (its stdout lines, the address and CA pin, are not JSON). */
function logLines(c: TestCluster): Line[] {
  return c.proc
    .out()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line);
}

/**
 * `mwi start --log-format json`: the Auth Service says at INFO why each join, challenge, renewal
 * and lock happened or was refused, never a secret, and each such line names its request, as
 * the audit events of that request do.
 */
describe('the Auth Service log: why, without secrets, with request ids', () => {
  let c: TestCluster;
  let issuer: TestIssuer;
  /** Every secret a caller sent during the run. */
  const secrets: Array<[string, string]> = [];

  before(async () => {
    issuer = await startIssuer({ issuer: GITLAB });
    c = await startCluster('log.example', oidcOverride(GITLAB, issuer.url), ['--log-format', 'json']);
  });
  after(async () => {
    await c?.stop();
    await issuer?.close();
  });

  it('a token join, and the same token refused: one line each, with the reason', async () => {
    const token = await c.addBot('robot', ['deploy']);
    secrets.push(['join token', token]);
    const flags = (n: string) => tbotFlags(c, token, join(c.dir, `s${n}`), join(c.dir, `o${n}`));
    assert.equal((await cli('tbot', ['start', ...flags('1'), '--oneshot'])).code, 0);
    assert.equal((await cli('tbot', ['start', ...flags('2'), '--oneshot'])).code, 1);
    const lines = await waitFor('both lines', () => {
      const l = logLines(c).filter((x) => /^join (accepted|refused)$/.test(x.message) && x.method === 'token');
      return l.length >= 2 ? l : undefined;
    });
    const [accepted, refused] = lines;
    assert.equal(accepted!.level, 'info');
    assert.equal(accepted!.component, 'auth');
    assert.equal(accepted!.message, 'join accepted');
    assert.equal(accepted!.bot, 'robot');
    assert.match(accepted!.instance, /^[0-9a-f-]{36}$/);
    assert.match(accepted!.token_id, /^h-[0-9a-f]{16}$/);
    assert.equal(refused!.message, 'join refused');
    assert.match(refused!.reason, /token (not found|already used)/);
    assert.equal(refused!.token_id, accepted!.token_id);
    for (const l of [accepted!, refused!]) assert.ok(!Number.isNaN(Date.parse(l.timestamp)));
  });

  it('a bound_keypair join (challenge, then join) and a second use of its registration secret refused', async () => {
    const out = await addJoinToken<{ token: string; registration_secret: string }>(c, 'robot', 'bound_keypair');
    secrets.push(['registration secret', out.registration_secret]);
    const bk = (n: string) => [
      'start',
      ...joinFlags(c, 'bound_keypair', out.token),
      '--data-dir',
      join(c.dir, `bk${n}`),
      '--destination-dir',
      join(c.dir, `bko${n}`),
      '--oneshot',
    ];
    const env = { TBOT_REGISTRATION_SECRET: out.registration_secret };
    assert.equal((await cli('tbot', bk('1'), { env })).code, 0);
    assert.equal((await cli('tbot', bk('2'), { env })).code, 1);
    const lines = await waitFor('the bound keypair lines', () => {
      const l = logLines(c).filter((x) => x.method === 'bound_keypair');
      return l.some((x) => x.message.startsWith('join challenge refused')) ? l : undefined;
    });
    const messages = lines.map((l) => l.message);
    assert.ok(messages.includes('join challenge issued'), messages.join(', '));
    assert.ok(messages.includes('join accepted'), messages.join(', '));
    const refusedChallenge = lines.find((l) => l.message.startsWith('join challenge refused'))!;
    assert.match(refusedChallenge.reason, /none of the offered keys is the key bound to this token/);
  });

  it('a platform (gitlab) join, and a JWT no rule allows refused naming why', async () => {
    const f = join(c.dir, 'gitlab.yaml');
    writeFileSync(
      f,
      'kind: token\nversion: v2\nmetadata: { name: gl }\nspec:\n  join_method: gitlab\n  bot_name: robot\n' +
        '  allow: [{ project_path: "grp/*" }]\n',
    );
    await c.tctlOk(['create', '-f', f]);
    const claims = (path: string) => ({
      sub: `project_path:${path}:ref_type:branch:ref:main`,
      project_path: path,
      aud: 'log.example',
    });
    const good = await issuer.sign(claims('grp/app'));
    const bad = await issuer.sign(claims('other/app'));
    secrets.push(['accepted JWT', good], ['refused JWT', bad]);
    const gl = (n: string) => [
      'start',
      ...joinFlags(c, 'gitlab', 'gl'),
      '--destination-dir',
      join(c.dir, `gl${n}`),
      '--oneshot',
    ];
    assert.equal((await cli('tbot', gl('1'), { env: { TBOT_GITLAB_JWT: good } })).code, 0);
    assert.equal((await cli('tbot', gl('2'), { env: { TBOT_GITLAB_JWT: bad } })).code, 1);
    const lines = await waitFor('the gitlab lines', () => {
      const l = logLines(c).filter((x) => x.method === 'gitlab');
      return l.length >= 2 ? l : undefined;
    });
    assert.equal(lines[0]!.message, 'join accepted');
    // why it joined: the allow rule that matched
    assert.deepEqual(lines[0]!.matched_rule, { project_path: 'grp/*' });
    assert.equal(lines[1]!.message, 'join refused');
    assert.match(lines[1]!.reason, /project_path/);
  });

  it('a request id is in the answer, the log line and the audit event of the same request', async () => {
    const { publicKeyPem } = await generateKeys('ec-p256');
    const secret = 'an-unknown-token-value-0123456789';
    secrets.push(['unknown token', secret]);
    const r = await anonymousCall(c.addr, c.caPin, 'POST', '/v1/join', {
      token: secret,
      join_method: 'token',
      public_key: publicKeyPem,
    });
    assert.equal(r.status, 403);
    const id = String(r.headers['x-request-id']);
    assert.match(id, /^[0-9a-f]{32}$/);
    const line = await waitFor('the log line', () => logLines(c).find((l) => l.request_id === id));
    assert.equal(line.message, 'join refused');
    const event = await waitFor('the audit event', () => c.audit().find((e) => e.request_id === id));
    assert.equal(event.event, 'bot.join');
    assert.equal(event.success, false);
    // and the successful token join's line names the request its audit event names
    const accepted = logLines(c).find((l) => l.message === 'join accepted' && l.method === 'token')!;
    const joined = c.audit().find((e) => e.event === 'bot.join' && e.bot_instance_id === accepted.instance)!;
    assert.match(accepted.request_id, /^[0-9a-f]{32}$/);
    assert.equal(joined.request_id, accepted.request_id);
    // tctl audit ls --format json shows it
    const listed = JSON.parse(await c.tctlOk(['audit', 'ls', '--type', 'bot.join', '--format', 'json']));
    assert.ok(listed.some((e: Line) => e.request_id === accepted.request_id));
  });

  it('a lock, and the join it refuses, are logged with the lock message', async () => {
    const token = await c.addBot('suspect', ['deploy']);
    secrets.push(['join token of a locked bot', token]);
    await c.tctlOk(['lock', '--user', 'bot-suspect', '--message', 'incident 42']);
    const lock = await waitFor('the lock line', () => logLines(c).find((l) => l.message === 'lock created'));
    assert.equal(lock.target, 'user:bot-suspect');
    assert.equal(lock.lock_message, 'incident 42');
    assert.equal(lock.user, 'admin');
    const r = await cli('tbot', ['start', ...tbotFlags(c, token, join(c.dir, 'l1'), join(c.dir, 'lo1')), '--oneshot']);
    assert.equal(r.code, 1, r.stderr);
    const refused = await waitFor('the refusal', () =>
      logLines(c).find((l) => l.message === 'join refused' && /incident 42/.test(l.reason ?? '')),
    );
    assert.match(refused.reason, /locked/);
  });

  it('the whole log of the run holds none of the secrets callers sent', async () => {
    assert.ok(secrets.length >= 5);
    const all = c.proc.out();
    const audit = ['events.log', 'refusals.log'].map((f) => readFileSync(join(c.dataDir, 'audit', f), 'utf8')).join('');
    for (const [what, value] of secrets) {
      assert.ok(!all.includes(value), `the log holds the ${what}`);
      assert.ok(!audit.includes(value), `the audit log holds the ${what}`);
      // nor a JWT's signature alone
      if (value.split('.').length === 3)
        assert.ok(!all.includes(value.split('.')[2]!), `the log holds the ${what}'s signature`);
    }
    // every line is JSON (--log-format json), not only the ones checked above
    const stderrLines = all.split('\n').filter((l) => l && !/^(mwi auth service|CA pin:)/.test(l));
    for (const l of stderrLines) assert.doesNotThrow(() => JSON.parse(l), l);
  });
});

describe('mwi start: --log-format and MWI_LOG_LEVEL are checked before anything starts', () => {
  it('a bad value exits 2 naming the flag or the variable', async () => {
    const format = await cli('mwi', ['start', '--log-format', 'xml', '--data-dir', '/nonexistent/x']);
    assert.equal(format.code, 2);
    assert.match(format.stderr, /^ERROR: --log-format: expected text or json/);
    const level = await cli('mwi', ['start', '--data-dir', '/nonexistent/x'], { env: { MWI_LOG_LEVEL: 'verbose' } });
    assert.equal(level.code, 2);
    assert.match(level.stderr, /^ERROR: MWI_LOG_LEVEL: expected one of debug, info, warn, error/);
  });
});
