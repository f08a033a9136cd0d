import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { SignJWT, type JWTPayload } from 'jose';
import { handleJoin } from '../../src/auth/join.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { isMwiError } from '../../src/errors.js';
import { GITHUB_ISSUER } from '../../src/join/github/wire.js';
import { globMatch } from '../../src/join/jwt/allow.js';
import { testContext } from '../helpers/auth-context.js';
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';

type T = Awaited<ReturnType<typeof testContext>>;
const now = () => Math.floor(Date.now() / 1000);

/** Refusals before the signature verified answer what an unknown token gets (finding 8). */
const GENERIC = /the token is unknown, expired, already used or not valid for this request/;

const GITHUB_CLAIMS = {
  sub: 'repo:octo/app:ref:refs/heads/main',
  repository: 'octo/app',
  repository_owner: 'octo',
  workflow: 'deploy',
  environment: 'production',
  actor: 'mona',
  ref: 'refs/heads/main',
  ref_type: 'branch',
  aud: 'unit',
};

describe('JWT-family joins against a real issuer on 127.0.0.1 (hostile token corpus)', () => {
  let t: T;
  let gh: TestIssuer;
  let gl: TestIssuer;
  let pub: string;
  let n = 0;
  const instances = async () => (await t.ctx.backend.range('/bot_instances/')).length;
  const lastReason = async () => (await t.ctx.audit.recent(1, 'bot.join'))[0]?.reason as string;
  const token = async (method: string, spec: Record<string, unknown>, allow: unknown[]) => {
    const name = `${method}-${n++}`;
    await t.admin.create(
      { kind: 'token', metadata: { name }, spec: { join_method: method, bot_name: 'ci', allow, ...spec } },
      false,
      'admin',
    );
    return name;
  };
  const join = (name: string, method: string, idToken: unknown) =>
    handleJoin(
      t.ctx,
      { token: name, join_method: method, public_key: pub, payload: { id_token: idToken } },
      '127.0.0.1',
    );

  before(async () => {
    gh = await startIssuer({ issuer: GITHUB_ISSUER });
    gl = await startIssuer({ issuer: 'https://gitlab.example.com' });
    t = await testContext({
      endpointOverrides: { [GITHUB_ISSUER]: gh.url, 'https://gitlab.example.com': gl.url },
      minRefreshMs: 60_000,
    });
    pub = (await generateKeys('ec-p256')).publicKeyPem;
    await t.admin.create(
      { kind: 'role', metadata: { name: 'ci' }, spec: { allow: { logins: ['deploy'] } } },
      false,
      'admin',
    );
    await t.admin.create({ kind: 'bot', metadata: { name: 'ci' }, spec: { roles: ['ci'] } }, false, 'admin');
  });
  after(async () => {
    await gh?.close();
    await gl?.close();
  });

  it('github: an allowed token joins; the identity does not renew', async () => {
    const name = await token('github', {}, [{ repository: 'octo/app', environment: 'production' }]);
    const id = await join(name, 'github', await gh.sign(GITHUB_CLAIMS));
    assert.equal(id.bot_name, 'ci');
    assert.equal(id.renewable, false);
  });

  const hostile: Array<[string, (name: string) => Promise<unknown>, RegExp, RegExp]> = [
    [
      'alg none',
      async () => {
        const claims = { ...GITHUB_CLAIMS, iss: GITHUB_ISSUER, iat: now(), exp: now() + 300 };
        return (
          `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.` +
          `${Buffer.from(JSON.stringify(claims)).toString('base64url')}.`
        );
      },
      GENERIC,
      /ERR_JOSE_ALG_NOT_ALLOWED|ERR_JWS_INVALID|not a canonical compact JWS/,
    ],
    [
      'HS256 keyed with the public key',
      async () => {
        const pem = createPublicKey({ key: gh.current().jwk as never, format: 'jwk' }).export({
          type: 'spki',
          format: 'pem',
        });
        return new SignJWT({ ...GITHUB_CLAIMS, iss: GITHUB_ISSUER, iat: now(), exp: now() + 300 })
          .setProtectedHeader({ alg: 'HS256', kid: gh.current().kid })
          .sign(Buffer.from(pem));
      },
      GENERIC,
      /ERR_JOSE_ALG_NOT_ALLOWED/,
    ],
    [
      'wrong iss',
      () => gh.sign({ ...GITHUB_CLAIMS, iss: 'https://token.actions.githubusercontent.com.evil.example' }),
      /iss claim is not acceptable/,
      /ERR_JWT_CLAIM_VALIDATION_FAILED/,
    ],
    [
      'wrong aud',
      () => gh.sign({ ...GITHUB_CLAIMS, aud: 'another-cluster' }),
      /aud claim is not acceptable/,
      /ERR_JWT_CLAIM_VALIDATION_FAILED/,
    ],
    [
      'expired',
      () => gh.sign({ ...GITHUB_CLAIMS, iat: now() - 600, exp: now() - 120 }),
      /has expired/,
      /ERR_JWT_EXPIRED/,
    ],
    [
      'nbf in the future',
      () => gh.sign({ ...GITHUB_CLAIMS, nbf: now() + 600 }),
      /nbf claim is not acceptable/,
      /ERR_JWT_CLAIM_VALIDATION_FAILED/,
    ],
    ['iat in the future', () => gh.sign({ ...GITHUB_CLAIMS, iat: now() + 600, exp: now() + 900 }), /iat claim/, /iat/],
    [
      'lifetime over an hour',
      () => gh.sign({ ...GITHUB_CLAIMS, iat: now(), exp: now() + 7200 }),
      /lives too long/,
      /lifetime/,
    ],
    [
      'unknown kid',
      async () => gh.sign(GITHUB_CLAIMS, { key: await gh.foreignKey() }),
      GENERIC,
      /ERR_JWKS_NO_MATCHING_KEY/,
    ],
    [
      'kid with path characters',
      () => gh.sign(GITHUB_CLAIMS, { kid: '../../../etc/passwd?x=http://evil' }),
      GENERIC,
      /malformed kid/,
    ],
    [
      'signature from another key under the real kid',
      async () => gh.sign(GITHUB_CLAIMS, { key: await gh.foreignKey(), kid: gh.current().kid }),
      GENERIC,
      /ERR_JWS_SIGNATURE_VERIFICATION_FAILED/,
    ],
    [
      'missing required claim',
      () => gh.sign({ ...GITHUB_CLAIMS, repository: undefined }),
      /repository claim is not acceptable/,
      /repository/,
    ],
    [
      'claim of the wrong type',
      () => gh.sign({ ...GITHUB_CLAIMS, repository: ['octo/app'] as unknown }),
      /matches none of the token's allow rules|not acceptable/,
      /no allow rule|repository/,
    ],
    [
      'allow near miss: prefix',
      () => gh.sign({ ...GITHUB_CLAIMS, repository: 'octo/app-evil' }),
      /matches none of the token's allow rules/,
      /no allow rule matches/,
    ],
    [
      'allow near miss: case',
      () => gh.sign({ ...GITHUB_CLAIMS, repository: 'Octo/App' }),
      /matches none/,
      /no allow rule matches/,
    ],
    [
      'allow: one field of the rule differs',
      () => gh.sign({ ...GITHUB_CLAIMS, environment: 'staging' }),
      /matches none/,
      /no allow rule matches/,
    ],
    ['not a JWT', async () => 'not.a.jwt', GENERIC, /not a JWS|ERR_JWS_INVALID|not a canonical compact JWS/],
    ['no token', async () => undefined, GENERIC, /no id_token/],
  ];
  for (const [what, make, publicMsg, auditReason] of hostile) {
    it(`github hostile: ${what} is refused, audited, and creates no instance`, async () => {
      const name = await token('github', {}, [{ repository: 'octo/app', environment: 'production' }]);
      const before = await instances();
      await assert.rejects(
        join(name, 'github', await make(name)),
        (e) => isMwiError(e, 'JOIN_DENIED') && publicMsg.test(e.message),
      );
      assert.match(await lastReason(), auditReason);
      assert.equal(await instances(), before);
    });
  }

  it('a replayed token is refused the second time', async () => {
    const name = await token('github', {}, [{ repository: 'octo/app' }]);
    const jwt = await gh.sign({ ...GITHUB_CLAIMS, jti: 'replay-test' });
    await join(name, 'github', jwt);
    await assert.rejects(
      join(name, 'github', jwt),
      (e) => isMwiError(e, 'JOIN_DENIED') && /already used/.test(e.message),
    );
  });

  it('an empty allow list is refused at creation; unknown allow fields are named', async () => {
    await assert.rejects(token('github', {}, []), /spec.allow: at least one allow rule is required/);
    await assert.rejects(token('github', {}, [{ repo: 'octo/app' }]), /spec.allow\[0\]\.repo: unknown field repo/);
  });

  it('JWKS rotation is picked up without a restart; a flood of random kids fetches at most once per interval', async () => {
    const name = await token('github', {}, [{ repository: 'octo/app' }]);
    const before = gh.jwksFetches();
    // the flood: 50 tokens with unknown kids, within one refresh interval
    const flood = await Promise.allSettled(
      Array.from({ length: 50 }, async () =>
        join(name, 'github', await gh.sign(GITHUB_CLAIMS, { kid: `rand-${Math.random()}` })),
      ),
    );
    assert.ok(flood.every((r) => r.status === 'rejected'));
    assert.ok(gh.jwksFetches() - before <= 1, `${gh.jwksFetches() - before} fetches`);
    // the issuer rotates; after the interval, the new kid is fetched once and accepted
    await gh.rotate(false);
    t.clock.advance(61_000);
    await join(name, 'github', await gh.sign(GITHUB_CLAIMS));
    assert.ok(gh.jwksFetches() - before <= 2);
  });

  it('gitlab: glob allow rules match like Teleport; near misses are refused', async () => {
    {
      const name = await token('gitlab', { gitlab: { domain: 'gitlab.example.com' } }, [
        { project_path: 'group/app-*', ref_type: 'branch', ref_protected: true },
      ]);
      const claims = {
        sub: 'project_path:group/app-1:ref_type:branch:ref:main',
        project_path: 'group/app-1',
        namespace_path: 'group',
        ref: 'main',
        ref_type: 'branch',
        ref_protected: 'true',
        pipeline_source: 'push',
        aud: 'unit',
      };
      await join(name, 'gitlab', await gl.sign(claims));
      await assert.rejects(
        join(name, 'gitlab', await gl.sign({ ...claims, project_path: 'group/ap-1' })),
        /matches none/,
      );
      await assert.rejects(join(name, 'gitlab', await gl.sign({ ...claims, ref_protected: 'false' })), /matches none/);
      await assert.rejects(
        join(name, 'gitlab', await gl.sign({ ...claims, project_path: 'other/group/app-1' })),
        /matches none/,
      );
    }
    assert.ok(globMatch('group/app-*', 'group/app-x'));
    assert.ok(!globMatch('group/app-*', 'group/apps'));
    assert.ok(!globMatch('a.b', 'axb'), 'regex characters are literal');
  });

  it('kubernetes static_jwks: projected tokens for an allowed service account join; unbound or other accounts do not', async () => {
    const k8s = await startIssuer({ issuer: 'https://kubernetes.default.svc' });
    try {
      const name = await token(
        'kubernetes',
        { kubernetes: { type: 'static_jwks', static_jwks: { jwks: k8s.jwks() } } },
        [{ service_account: 'prod:deployer' }],
      );
      const claims = (ns: string, sa: string, pod = true): JWTPayload => ({
        aud: ['unit'],
        sub: `system:serviceaccount:${ns}:${sa}`,
        'kubernetes.io': {
          namespace: ns,
          serviceaccount: { name: sa, uid: 'u1' },
          ...(pod ? { pod: { name: 'p-1', uid: 'u2' } } : {}),
        },
      });
      await join(name, 'kubernetes', await k8s.sign(claims('prod', 'deployer')));
      await assert.rejects(join(name, 'kubernetes', await k8s.sign(claims('prod', 'other'))), /matches none/);
      await assert.rejects(
        join(name, 'kubernetes', await k8s.sign(claims('prod', 'deployer', false))),
        /only projected \(pod-bound\) service account tokens/,
      );
      await assert.rejects(
        join(name, 'kubernetes', await k8s.sign({ ...claims('prod', 'deployer'), aud: ['kubernetes'] })),
        /aud claim is not acceptable/,
      );
    } finally {
      await k8s.close();
    }
  });
});
