// `tctl tokens test` (join explain) and `tctl audit ls --failures`, with the real mwi, tctl and tbot
// and identity tokens signed by a test issuer standing in for GitHub Actions' (its keys on 127.0.0.1).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GITHUB_ISSUER } from '../../src/join/github/wire.js';
import { joinFlags, startCluster, type TestCluster } from '../helpers/cluster.js';
import { cli } from '../helpers/procs.js';
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';

const TOKEN =
  'kind: token\nversion: v2\nmetadata: { name: gh-deploy }\nspec:\n  join_method: github\n  bot_name: ci\n' +
  '  github:\n    allow:\n      - { repository: octo/app, ref: refs/heads/main }\n      - { repository_owner: acme }\n';
const CLAIMS = { sub: 'repo:octo/app:ref:refs/heads/dev', repository: 'octo/app', repository_owner: 'octo' };

describe('tctl tokens test: a platform token join, explained to the operator', () => {
  let c: TestCluster;
  let gh: TestIssuer;
  let n = 0;
  /** Writes an identity token to a file (never argv) and runs `tctl tokens test` on it. */
  const test = async (idToken: string, extra: string[] = []) => {
    const file = join(c.dir, `id-token-${n++}`);
    writeFileSync(file, `${idToken}\n`, { mode: 0o600 });
    return c.tctl(['tokens', 'test', 'gh-deploy', '--id-token', file, ...extra]);
  };

  before(async () => {
    gh = await startIssuer({ issuer: GITHUB_ISSUER });
    c = await startCluster('explain.example', `oidc:\n  endpoint_overrides:\n    "${GITHUB_ISSUER}": "${gh.url}"\n`);
    await c.addBot('ci', ['nobody']);
    writeFileSync(join(c.dir, 'gh.yaml'), TOKEN);
    await c.tctlOk(['create', join(c.dir, 'gh.yaml')]);
  });
  after(async () => {
    await c?.stop();
    await gh?.close();
  });

  it('a token that matches: every check ok, the matching rule shown, exit 0; nothing is created', async () => {
    const r = await test(await gh.sign({ ...CLAIMS, ref: 'refs/heads/main', aud: 'explain.example' }));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /ok +signature +RS256/);
    assert.match(r.stdout, /ok +audience +want "explain\.example"/);
    assert.match(r.stdout, /rule 0: MATCHES/);
    assert.match(r.stdout, /Result: this identity token would join as bot "ci"/);
    // every check passed (rule 1 does not match, and need not)
    assert.doesNotMatch(r.stdout, /^FAIL/m);
    assert.match(r.stdout, /rule 1: does not match\n/);
    // nothing was created or audited as a join
    assert.doesNotMatch(await c.tctlOk(['bots', 'instances', 'ls', 'ci']), /github/);
    assert.equal(c.audit().filter((e) => e.event === 'bot.join').length, 0, 'tokens test is not a join');
  });

  it('no rule matches: each field with what the rule wants and what the token has, exit 1', async () => {
    const r = await test(await gh.sign({ ...CLAIMS, ref: 'refs/heads/dev', aud: 'explain.example' }));
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, /rule 0: does not match/);
    assert.match(r.stdout, /ok +repository +"octo\/app" +repository +"octo\/app"/);
    assert.match(r.stdout, /FAIL +ref +"refs\/heads\/main" +ref +"refs\/heads\/dev"/);
    assert.match(r.stdout, /FAIL +repository_owner +"acme" +repository_owner +"octo"/);
    assert.match(r.stdout, /would be REFUSED: no allow rule matches/);
  });

  it('the checks before the rules: audience, expiry, a key the issuer never published', async () => {
    const aud = await test(await gh.sign({ ...CLAIMS, aud: 'another-cluster' }));
    assert.equal(aud.code, 1);
    assert.match(
      aud.stdout,
      /FAIL +audience +want "explain\.example" among the token's aud, token has "another-cluster"/,
    );
    assert.doesNotMatch(aud.stdout, /rule 0/);

    const now = Math.floor(Date.now() / 1000);
    const old = await test(await gh.sign({ ...CLAIMS, aud: 'explain.example', iat: now - 900, exp: now - 600 }));
    assert.equal(old.code, 1);
    assert.match(old.stdout, /FAIL +expiry +exp \S+ \(now/);

    const forged = await test(await gh.sign({ ...CLAIMS, aud: 'explain.example' }, { key: await gh.foreignKey() }));
    assert.equal(forged.code, 1);
    // what it claims to be, from its unverified payload, for the operator to see whose token it is
    assert.match(
      forged.stdout,
      /FAIL +(keys|signature) .*the token says iss "https:\/\/token\.actions\.githubusercontent\.com"/,
    );

    const junk = await test('not-a-jwt');
    assert.equal(junk.code, 1);
    assert.match(junk.stdout, /FAIL +form /);
  });

  it('--format json: the same report as data', async () => {
    const r = await test(await gh.sign({ ...CLAIMS, ref: 'refs/heads/main', aud: 'explain.example' }), [
      '--format',
      'json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { would_join: boolean; rules: Array<{ ok: boolean }>; claims: object };
    assert.equal(report.would_join, true);
    assert.equal(report.rules[0]?.ok, true);
    assert.deepEqual(report.claims, {
      sub: CLAIMS.sub,
      repository: 'octo/app',
      repository_owner: 'octo',
      ref: 'refs/heads/main',
    });
  });

  it('--from-audit: a refused tbot join, listed by audit ls --failures, explained, fixed, explained again', async () => {
    gh.tokenEndpointClaims = { ...CLAIMS, ref: 'refs/heads/dev' };
    const env = {
      ACTIONS_ID_TOKEN_REQUEST_URL: `${gh.url}/token`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'runner-request-token',
    };
    const joined = await cli(
      'tbot',
      ['start', ...joinFlags(c, 'github', 'gh-deploy'), '--destination-dir', join(c.dir, 'out'), '--oneshot'],
      { env },
    );
    assert.notEqual(joined.code, 0);
    const failures = await c.tctlOk(['audit', 'ls', '--failures']);
    const row = failures.split('\n').find((l) => /bot\.join .*gh-deploy/.test(l));
    assert.ok(row, failures);
    assert.match(row, /no allow rule matches/);
    const uid = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/.exec(row)![0];

    const before = await c.tctl(['tokens', 'test', 'gh-deploy', '--from-audit', uid]);
    assert.equal(before.code, 1, before.stderr);
    assert.match(before.stdout, /ok +recorded claims/);
    assert.match(before.stdout, /FAIL +ref +"refs\/heads\/main" +ref +"refs\/heads\/dev"/);

    // the operator widens the rule to the branch the job ran on; the same refused join now passes
    writeFileSync(join(c.dir, 'gh.yaml'), TOKEN.replace('refs/heads/main', 'refs/heads/dev'));
    await c.tctlOk(['create', '--force', join(c.dir, 'gh.yaml')]);
    const after = await c.tctl(['tokens', 'test', 'gh-deploy', '--from-audit', uid]);
    assert.equal(after.code, 0, after.stdout);
    assert.match(after.stdout, /rule 0: MATCHES/);
  });

  it('refused requests: a token method without identity tokens, no input, both inputs, unknown uid', async () => {
    const bot = JSON.parse(await c.tctlOk(['tokens', 'add', '--type=bot', '--bot-name', 'ci', '--format', 'json'])) as {
      id: string;
    };
    const secretToken = await c.tctl(['tokens', 'test', bot.id, '--from-audit', 'x']);
    assert.notEqual(secretToken.code, 0);
    assert.match(secretToken.stderr, /joins with token, which presents no platform identity token/);

    const none = await c.tctl(['tokens', 'test', 'gh-deploy']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /--id-token FILE\) or a refused join \(--from-audit UID\)/);
    const both = await c.tctl(['tokens', 'test', 'gh-deploy', '--id-token', '/dev/null', '--from-audit', 'u']);
    assert.equal(both.code, 2);

    const unknown = await c.tctl(['tokens', 'test', 'gh-deploy', '--from-audit', 'no-such-uid']);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /no audit event with uid "no-such-uid"/);
    const noToken = await c.tctl(['tokens', 'test', 'nosuch', '--id-token', '/dev/null']);
    assert.notEqual(noToken.code, 0);
    assert.match(noToken.stderr, /^ERROR: no such token: /);
    assert.doesNotMatch(noToken.stderr, /nosuch/);
  });

  it('a token secret given as NAME is never repeated: tokens test (found or not) and edit name it by its id', async () => {
    const added = JSON.parse(
      await c.tctlOk(['tokens', 'add', '--type=bot', '--bot-name', 'ci', '--format', 'json']),
    ) as { id: string; token: string };
    const secret = added.token;
    const bySecret = await c.tctl(['tokens', 'test', secret, '--from-audit', 'x']);
    assert.notEqual(bySecret.code, 0, bySecret.stderr);
    assert.match(bySecret.stderr, new RegExp(`token "${added.id}" joins with token, which presents no platform`));
    const missing = await c.tctl(['tokens', 'test', `${secret}0`, '--from-audit', 'x']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /no such token/);
    const edit = await cli('tctl', ['--data-dir', c.dataDir, 'edit', `token/${secret}`], { env: { EDITOR: 'true' } });
    assert.equal(edit.code, 2, edit.stderr);
    assert.match(edit.stderr, new RegExp(`token "${added.id}" uses join method token`));
    for (const r of [bySecret, missing, edit]) assert.ok(!`${r.stdout}${r.stderr}`.includes(secret), r.stderr);
  });
});
