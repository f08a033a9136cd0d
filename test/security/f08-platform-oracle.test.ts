import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SignJWT } from 'jose';
import { handleJoin } from '../../src/auth/join.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { isMwiError } from '../../src/errors.js';
import { GITHUB_ISSUER } from '../../src/join/github/wire.js';
import { addGithubBot, testContext } from '../helpers/auth-context.js';
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';

/**
 * Finding 8 (platform part): token names are not secrets, but whether a token exists was told to
 * anyone who asked (an existing token answered "no identity token was sent", an unknown one the
 * generic refusal). Until the issuer's signature has verified, every refusal must be the same
 * public answer as "token not found"; the precise reason goes to the audit log only.
 */

const CLAIMS = { sub: 'repo:octo/app:ref:refs/heads/main', repository: 'octo/app', aud: 'unit' };
const DOWN_ISSUER = 'https://down.example.com';
const now = () => Math.floor(Date.now() / 1000);

describe('finding 8: platform joins answer one generic refusal until the signature has verified', () => {
  let t: Awaited<ReturnType<typeof testContext>>;
  let gh: TestIssuer;
  let pub: string;
  const lastReason = async () => (await t.ctx.audit.recent(1, 'bot.join'))[0]?.reason as string;
  const answer = async (
    token: string,
    method: string,
    payload: unknown,
  ): Promise<{ code: string; message: string }> => {
    try {
      await handleJoin(t.ctx, { token, join_method: method, public_key: pub, payload }, '127.0.0.1');
    } catch (err) {
      assert.ok(isMwiError(err), String(err));
      return { code: err.code, message: err.message };
    }
    throw new Error(`${token}: joined`);
  };

  before(async () => {
    gh = await startIssuer({ issuer: GITHUB_ISSUER });
    // an issuer whose keys cannot be fetched (nothing listens there)
    t = await testContext({ endpointOverrides: { [GITHUB_ISSUER]: gh.url, [DOWN_ISSUER]: 'http://127.0.0.1:1' } });
    pub = (await generateKeys('ec-p256')).publicKeyPem;
    await addGithubBot(t.admin, {
      'gh-deploy': undefined,
      'ghes-deploy': { enterprise_server_host: 'down.example.com' },
    });
    await t.admin.create(
      {
        kind: 'token',
        metadata: { name: 'k8s-deploy' },
        spec: {
          join_method: 'kubernetes',
          bot_name: 'ci',
          kubernetes: { type: 'in_cluster' },
          allow: [{ service_account: 'prod:deployer' }],
        },
      },
      false,
      'admin',
    );
  });
  after(async () => {
    await gh?.close();
  });

  it('finding 8: an existing token and an unknown one give the same answer for every refusal before the proof', async () => {
    const unknown = await answer('no-such-token', 'github', { id_token: await gh.sign(CLAIMS) });
    assert.equal(unknown.code, 'JOIN_DENIED');
    const hs256 = await new SignJWT({ ...CLAIMS, iss: GITHUB_ISSUER, iat: now(), exp: now() + 60 })
      .setProtectedHeader({ alg: 'HS256', kid: gh.current().kid })
      .sign(
        Buffer.from(
          createPublicKey({ key: gh.current().jwk as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' }),
        ),
      );
    const noneClaims = { ...CLAIMS, iss: GITHUB_ISSUER, iat: now(), exp: now() + 60 };
    const none =
      `${Buffer.from('{"alg":"none"}').toString('base64url')}.` +
      `${Buffer.from(JSON.stringify(noneClaims)).toString('base64url')}.`;
    const cases: Array<[string, string, string, unknown, RegExp]> = [
      ['no id_token', 'gh-deploy', 'github', {}, /id_token/],
      ['no payload', 'gh-deploy', 'github', undefined, /id_token/],
      ['id_token not a string', 'gh-deploy', 'github', { id_token: 42 }, /id_token/],
      ['garbage id_token', 'gh-deploy', 'github', { id_token: 'garbage' }, /id_token/],
      ['three garbage segments', 'gh-deploy', 'github', { id_token: 'aaaa.bbbb.cccc' }, /./],
      [
        'malformed kid',
        'gh-deploy',
        'github',
        { id_token: await gh.sign(CLAIMS, { kid: '../../etc/passwd?x=http://evil' }) },
        /malformed kid/,
      ],
      [
        'unknown kid',
        'gh-deploy',
        'github',
        { id_token: await gh.sign(CLAIMS, { key: await gh.foreignKey() }) },
        /ERR_JWKS_NO_MATCHING_KEY/,
      ],
      [
        'bad signature',
        'gh-deploy',
        'github',
        { id_token: await gh.sign(CLAIMS, { key: await gh.foreignKey(), kid: gh.current().kid }) },
        /ERR_JWS_SIGNATURE_VERIFICATION_FAILED/,
      ],
      ['HS256 keyed with the public key', 'gh-deploy', 'github', { id_token: hs256 }, /ERR_JOSE_ALG_NOT_ALLOWED/],
      ['alg none', 'gh-deploy', 'github', { id_token: none }, /./],
      ['issuer keys unavailable', 'ghes-deploy', 'github', { id_token: await gh.sign(CLAIMS) }, /unavailable/],
      ['kubernetes in_cluster: no id_token', 'k8s-deploy', 'kubernetes', {}, /id_token/],
      [
        'kubernetes in_cluster: no API server to review it',
        'k8s-deploy',
        'kubernetes',
        { id_token: await gh.sign(CLAIMS) },
        /Kubernetes API/,
      ],
    ];
    const differs: string[] = [];
    for (const [what, token, method, payload, reason] of cases) {
      const got = await answer(token, method, payload);
      if (got.code !== unknown.code || got.message !== unknown.message)
        differs.push(`${what}: ${got.code} ${got.message}`);
      // the precise reason still reaches the audit log
      assert.match(await lastReason(), reason, what);
    }
    assert.deepEqual(differs, [], `answers that tell the token exists:\n${differs.join('\n')}`);
  });

  it('finding 8: after the signature verified, the caller may be told which check failed', async () => {
    const expired = await answer('gh-deploy', 'github', {
      id_token: await gh.sign({ ...CLAIMS, iat: now() - 600, exp: now() - 120 }),
    });
    assert.match(expired.message, /has expired/);
    const missed = await answer('gh-deploy', 'github', {
      id_token: await gh.sign({ ...CLAIMS, repository: 'octo/other' }),
    });
    assert.match(missed.message, /matches none of the token's allow rules/);
  });
});
