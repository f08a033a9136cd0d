// `tctl tokens test` explains a join with the join's own checks: on a corpus of good and hostile
// identity tokens its outcome is exactly the join's, and explaining spends nothing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SignJWT, type JWTPayload } from 'jose';
import { handleJoin } from '../../src/auth/join.js';
import { testToken } from '../../src/auth/token-test.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { isMwiError } from '../../src/errors.js';
import { explainAllow } from '../../src/join/jwt/allow.js';
import { GITHUB_ALLOW, GITHUB_ISSUER, GITHUB_REQUIRED } from '../../src/join/github/wire.js';
import { testContext } from '../helpers/auth-context.js';
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';

const now = () => Math.floor(Date.now() / 1000);
const CLAIMS = {
  sub: 'repo:octo/app:ref:refs/heads/main',
  repository: 'octo/app',
  ref: 'refs/heads/main',
  aud: 'unit',
};

describe('join explain agrees with the join', () => {
  let t: Awaited<ReturnType<typeof testContext>>;
  let gh: TestIssuer;
  let pub: string;

  before(async () => {
    gh = await startIssuer({ issuer: GITHUB_ISSUER });
    t = await testContext({ endpointOverrides: { [GITHUB_ISSUER]: gh.url } });
    pub = (await generateKeys('ec-p256')).publicKeyPem;
    await t.admin.create({ kind: 'role', metadata: { name: 'ci' }, spec: { allow: { logins: ['d'] } } }, false, 'a');
    await t.admin.create({ kind: 'bot', metadata: { name: 'ci' }, spec: { roles: ['ci'] } }, false, 'a');
    const allow = [{ repository: 'octo/app', ref: 'refs/heads/main' }, { repository_owner: 'acme' }];
    await t.admin.create(
      { kind: 'token', metadata: { name: 'gh' }, spec: { join_method: 'github', bot_name: 'ci', github: { allow } } },
      false,
      'a',
    );
  });
  after(async () => {
    await gh?.close();
  });

  const unsigned = (claims: JWTPayload, alg: string) =>
    `${Buffer.from(JSON.stringify({ alg, typ: 'JWT' })).toString('base64url')}.` +
    `${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`;

  const corpus: Array<[string, () => Promise<string>]> = [
    ['valid', () => gh.sign(CLAIMS)],
    ['second rule', () => gh.sign({ ...CLAIMS, repository: 'acme/x', repository_owner: 'acme' })],
    ['no rule matches', () => gh.sign({ ...CLAIMS, ref: 'refs/heads/dev' })],
    ['wrong audience', () => gh.sign({ ...CLAIMS, aud: 'other' })],
    ['audience list with ours', () => gh.sign({ ...CLAIMS, aud: ['x', 'unit'] })],
    ['expired', () => gh.sign({ ...CLAIMS, iat: now() - 900, exp: now() - 300 })],
    ['expired within leeway', () => gh.sign({ ...CLAIMS, iat: now() - 600, exp: now() - 30 })],
    ['iat in the future', () => gh.sign({ ...CLAIMS, iat: now() + 600, exp: now() + 900 })],
    ['nbf in the future', () => gh.sign({ ...CLAIMS, nbf: now() + 600 })],
    ['lives too long', () => gh.sign({ ...CLAIMS, iat: now(), exp: now() + 7200 })],
    ['no exp', () => gh.sign({ ...CLAIMS, exp: undefined })],
    ['wrong issuer', () => gh.sign({ ...CLAIMS, iss: 'https://evil.example' })],
    ['foreign key', async () => gh.sign(CLAIMS, { key: await gh.foreignKey() })],
    ['unknown kid', () => gh.sign(CLAIMS, { kid: 'nope' })],
    ['alg none', async () => unsigned({ ...CLAIMS, iss: GITHUB_ISSUER, iat: now(), exp: now() + 60 }, 'none')],
    [
      'HS256 keyed with nothing public',
      () =>
        new SignJWT({ ...CLAIMS, iss: GITHUB_ISSUER, iat: now(), exp: now() + 60 })
          .setProtectedHeader({ alg: 'HS256', kid: gh.current().kid })
          .sign(new Uint8Array(32)),
    ],
    ['not a JWT', async () => 'x.y'],
  ];

  for (const [name, make] of corpus) {
    it(`${name}: explain's outcome is the join's`, async () => {
      const idToken = await make();
      const report = await testToken(t.ctx, 'gh', { id_token: idToken });
      const joined = await handleJoin(
        t.ctx,
        { token: 'gh', join_method: 'github', public_key: pub, payload: { id_token: idToken } },
        '127.0.0.1',
      ).then(
        () => true,
        () => false,
      );
      // the join ran after the explanation: had explaining spent the token, a good one would fail here
      assert.equal(report.would_join, joined, JSON.stringify(report.checks));
      const failed = report.checks.filter((c) => c.ok === false).length;
      assert.equal(failed === 0 && report.rules.some((r) => r.ok), joined, JSON.stringify(report));
    });
  }

  it('form: the reason names id_token once; an identity token is bounded in bytes, not UTF-16 units', async () => {
    const report = await testToken(t.ctx, 'gh', { id_token: 'x.y' });
    const form = report.checks.find((c) => c.check === 'form')!;
    assert.match(form.detail, /^id_token: not a canonical compact JWS/);
    assert.doesNotMatch(form.detail, /id_token: id_token/);
    // 9,000 characters, 18,000 bytes
    await assert.rejects(
      testToken(t.ctx, 'gh', { id_token: 'é'.repeat(9000) }),
      (e: unknown) => isMwiError(e, 'BAD_REQUEST') && /longer than 16384 bytes/.test(e.message),
    );
  });

  it("keys: from a spec's static_jwks, the check says so rather than naming the issuer URL", async () => {
    const allow = [{ repository: 'octo/app' }];
    const spec = { join_method: 'github', bot_name: 'ci', github: { static_jwks: gh.jwks(), allow } };
    await t.admin.create({ kind: 'token', metadata: { name: 'gh-static' }, spec }, false, 'a');
    const report = await testToken(t.ctx, 'gh-static', { id_token: await gh.sign(CLAIMS) });
    const keys = report.checks.find((c) => c.check === 'keys')!;
    assert.equal(keys.detail, "the issuer's keys: the spec's static_jwks");
    assert.equal(report.would_join, true, JSON.stringify(report.checks));
    const fetched = await testToken(t.ctx, 'gh', { id_token: await gh.sign(CLAIMS) });
    assert.match(fetched.checks.find((c) => c.check === 'keys')!.detail, /token\.actions\.githubusercontent\.com/);
  });

  it('--from-audit: refused when the token was replaced by one of another join method; the detail is honest', async () => {
    const allow = [{ repository: 'octo/app', ref: 'refs/heads/main' }];
    const spec = { join_method: 'github', bot_name: 'ci', github: { allow } };
    await t.admin.create({ kind: 'token', metadata: { name: 'swap' }, spec }, false, 'a');
    const idToken = await gh.sign({ ...CLAIMS, ref: 'refs/heads/dev' });
    const join = { token: 'swap', join_method: 'github', public_key: pub, payload: { id_token: idToken } };
    await assert.rejects(handleJoin(t.ctx, join, '127.0.0.1'));
    const [event] = await t.ctx.audit.recent(1, { failures: true });
    assert.equal(event?.token_id, 'swap');
    const uid = event.uid!;
    const same = await testToken(t.ctx, 'swap', { audit_uid: uid });
    const recorded = same.checks.find((c) => c.check === 'recorded claims')!;
    assert.match(recorded.detail, /checked then, against the token's configuration at that time/);
    assert.match(recorded.detail, /issuer or keys is not re-checked/);
    // the same name, now a gitlab token whose rule the recorded github claims would seem to match
    const gitlab = { join_method: 'gitlab', bot_name: 'ci', gitlab: { allow: [{ sub: 'repo:octo/*' }] } };
    await t.admin.create({ kind: 'token', metadata: { name: 'swap' }, spec: gitlab }, true, 'a');
    await assert.rejects(
      testToken(t.ctx, 'swap', { audit_uid: uid }),
      (e: unknown) =>
        isMwiError(e, 'BAD_REQUEST') &&
        e.field === 'audit_uid' &&
        /is a github join, and the token now joins with gitlab/.test(e.message),
    );
  });

  it('--from-audit on a join refused with no claims recorded (token replayed): the reason, worded truly', async () => {
    t.ctx.audit.emit({
      event: 'bot.join',
      success: false,
      token_id: 'gh',
      join_method: 'github',
      reason: 'token replayed',
    });
    const [event] = await t.ctx.audit.recent(1, { failures: true });
    await assert.rejects(testToken(t.ctx, 'gh', { audit_uid: event!.uid! }), (e: unknown) => {
      assert.ok(isMwiError(e, 'BAD_REQUEST'));
      assert.match(e.message, /only a join refused by its allow rules records claims \(this one: token replayed\)/);
      assert.doesNotMatch(e.message, /before the platform's signature verified/);
      return true;
    });
  });

  it('explainAllow: every rule and field, a stored rule creation would refuse shown as matching nothing', () => {
    const policy = { fields: GITHUB_ALLOW, requireOneOf: GITHUB_REQUIRED };
    const out = explainAllow([{ ref: 'refs/heads/main' }, { repository: 'octo/app', ref: 'x' }], CLAIMS, policy);
    assert.equal(out[0]!.ok, false);
    assert.match(out[0]!.problem!, /^allow\[0\]: the rule must name the workload/);
    assert.deepEqual(
      out[1]!.fields.map((f) => [f.field, f.ok, f.got]),
      [
        ['repository', true, 'octo/app'],
        ['ref', false, 'refs/heads/main'],
      ],
    );
    assert.deepEqual(explainAllow('not a list', CLAIMS, policy), []);
  });
});
