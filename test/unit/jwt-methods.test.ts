import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SignJWT, type JWTPayload } from 'jose';
import { handleJoin } from '../../src/auth/join.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { isMwiError } from '../../src/errors.js';
import { GITHUB_ISSUER } from '../../src/join/github/wire.js';
import { GOOGLE_ISSUER } from '../../src/join/gcp/wire.js';
import { testContext } from '../helpers/auth-context.js';
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';

/** Every JWT method, with its platform's real claim shape. */
const METHODS: Array<{
  method: string;
  issuer: string;
  spec?: Record<string, unknown>;
  allow: Record<string, unknown>;
  claims: JWTPayload;
  miss: JWTPayload;
}> = [
  {
    method: 'github',
    issuer: GITHUB_ISSUER,
    allow: { repository: 'octo/app' },
    claims: { sub: 'repo:octo/app:ref:refs/heads/main', repository: 'octo/app', aud: 'unit' },
    miss: { repository: 'octo/apps' },
  },
  {
    method: 'gitlab',
    issuer: 'https://gitlab.com',
    allow: { namespace_path: 'grp' },
    claims: {
      sub: 'project_path:grp/app:ref_type:branch:ref:main',
      project_path: 'grp/app',
      namespace_path: 'grp',
      aud: 'unit',
    },
    miss: { namespace_path: 'grp2' },
  },
  {
    method: 'kubernetes',
    issuer: 'https://k8s.example.com',
    spec: { kubernetes: { type: 'oidc', oidc: { issuer: 'https://k8s.example.com' } } },
    allow: { service_account: 'ns:sa' },
    claims: {
      sub: 'system:serviceaccount:ns:sa',
      aud: ['unit'],
      'kubernetes.io': { namespace: 'ns', serviceaccount: { name: 'sa' }, pod: { name: 'p' } },
    },
    miss: { 'kubernetes.io': { namespace: 'ns2', serviceaccount: { name: 'sa' }, pod: { name: 'p' } } },
  },
  {
    method: 'circleci',
    issuer: 'https://oidc.circleci.com/org/org-1',
    spec: { circleci: { organization_id: 'org-1' } },
    allow: { project_id: 'proj-1', context_id: 'ctx-1' },
    claims: {
      sub: 'org/org-1/project/proj-1/user/u',
      aud: 'org-1',
      'oidc.circleci.com/project-id': 'proj-1',
      'oidc.circleci.com/context-ids': ['ctx-0', 'ctx-1'],
    },
    miss: { 'oidc.circleci.com/context-ids': ['ctx-0'] },
  },
  {
    method: 'gcp',
    issuer: GOOGLE_ISSUER,
    allow: { project_ids: ['p-1'], locations: ['us-west1'] },
    claims: {
      sub: '1234',
      aud: 'unit',
      email: 'vm@p-1.iam.gserviceaccount.com',
      google: { compute_engine: { project_id: 'p-1', zone: 'us-west1-b' } },
    },
    miss: { google: { compute_engine: { project_id: 'p-1', zone: 'us-west10-b' } } },
  },
  {
    method: 'terraform_cloud',
    issuer: 'https://app.terraform.io',
    allow: { organization_name: 'acme', workspace_name: 'prod', run_phase: 'apply' },
    claims: {
      sub: 'organization:acme:project:p:workspace:prod:run_phase:apply',
      aud: 'unit',
      terraform_organization_id: 'org-x',
      terraform_organization_name: 'acme',
      terraform_workspace_id: 'ws-x',
      terraform_workspace_name: 'prod',
      terraform_run_phase: 'apply',
    },
    miss: { terraform_run_phase: 'plan' },
  },
  {
    method: 'spacelift',
    issuer: 'https://acme.app.spacelift.io',
    spec: { spacelift: { hostname: 'acme.app.spacelift.io' } },
    allow: { space_id: 'root', caller_type: 'stack' },
    claims: {
      sub: 'space:root:stack:infra:run_type:TRACKED:scope:write',
      aud: 'acme.app.spacelift.io',
      spaceId: 'root',
      callerType: 'stack',
      callerId: 'infra',
      scope: 'write',
    },
    miss: { callerType: 'module' },
  },
  {
    method: 'bitbucket',
    issuer: 'https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc',
    spec: {
      bitbucket: {
        identity_provider_url: 'https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc',
        audience: 'ari:cloud:bitbucket::workspace/ws',
      },
    },
    allow: { workspace_uuid: '{ws}', repository_uuid: '{repo}' },
    claims: {
      sub: '{repo}:{step}',
      aud: 'ari:cloud:bitbucket::workspace/ws',
      workspaceUuid: '{ws}',
      repositoryUuid: '{repo}',
      branchName: 'main',
    },
    miss: { repositoryUuid: '{other}' },
  },
  {
    method: 'azure_devops',
    issuer: 'https://vstoken.dev.azure.com/org-guid',
    spec: { azure_devops: { organization_id: 'org-guid' } },
    allow: { project_name: 'web', pipeline_name: 'deploy' },
    claims: { sub: 'p://acme/web/deploy', aud: 'api://AzureADTokenExchange', prj_id: 'pid', def_id: '7' },
    miss: { sub: 'p://acme/web/deploy-staging' },
  },
];

describe('every JWT method: an allowed token joins, hostile and near-miss tokens do not', () => {
  const issuers = new Map<string, TestIssuer>();
  let t: Awaited<ReturnType<typeof testContext>>;
  let pub: string;
  let n = 0;
  before(async () => {
    for (const m of METHODS) issuers.set(m.method, await startIssuer({ issuer: m.issuer }));
    t = await testContext({
      endpointOverrides: Object.fromEntries(METHODS.map((m) => [m.issuer, issuers.get(m.method)!.url])),
      minRefreshMs: 60_000,
    });
    pub = (await generateKeys('ec-p256')).publicKeyPem;
    await t.admin.create({ kind: 'role', metadata: { name: 'r' }, spec: {} }, false, 'admin');
    await t.admin.create({ kind: 'bot', metadata: { name: 'b' }, spec: { roles: ['r'] } }, false, 'admin');
  });
  after(async () => {
    for (const i of issuers.values()) await i.close();
  });

  for (const m of METHODS) {
    it(`${m.method}`, async () => {
      const iss = issuers.get(m.method)!;
      const name = `${m.method}-${n++}`;
      await t.admin.create(
        {
          kind: 'token',
          metadata: { name },
          spec: { join_method: m.method, bot_name: 'b', allow: [m.allow], ...m.spec },
        },
        false,
        'admin',
      );
      const join = async (claims: JWTPayload, opts?: Parameters<TestIssuer['sign']>[1]) =>
        handleJoin(
          t.ctx,
          {
            token: name,
            join_method: m.method,
            public_key: pub,
            payload: { id_token: await iss.sign({ jti: `${Math.random()}`, ...m.claims, ...claims }, opts) },
          },
          '-',
        );
      const before = (await t.ctx.backend.range('/bot_instances/')).length;
      const refused = async (why: string, p: Promise<unknown>) =>
        assert.rejects(p, (e) => isMwiError(e, 'JOIN_DENIED'), `${m.method}: ${why} was accepted`);
      await refused('allow near miss', join(m.miss));
      await refused('wrong iss', join({ iss: `${m.issuer}.evil` }));
      await refused('wrong aud', join({ aud: 'someone-else' }));
      await refused(
        'expired',
        join({ iat: Math.floor(Date.now() / 1000) - 900, exp: Math.floor(Date.now() / 1000) - 120 }),
      );
      await refused('nbf in the future', join({ nbf: Math.floor(Date.now() / 1000) + 900 }));
      await refused('foreign key', join({}, { key: await iss.foreignKey(), kid: iss.current().kid }));
      await refused('unknown kid', join({}, { key: await iss.foreignKey() }));
      await refused('kid with URL characters', join({}, { kid: 'https://evil.example/jwks?x=1' }));
      const hs = await new SignJWT({
        ...m.claims,
        iss: m.issuer,
        iat: Math.floor(Date.now() / 1000),
        exp: Math.floor(Date.now() / 1000) + 60,
      })
        .setProtectedHeader({ alg: 'HS256', kid: iss.current().kid })
        .sign(Buffer.from(JSON.stringify(iss.current().jwk)));
      await refused(
        'HS256 with the public key',
        handleJoin(t.ctx, { token: name, join_method: m.method, public_key: pub, payload: { id_token: hs } }, '-'),
      );
      const noneClaims = {
        ...m.claims,
        iss: m.issuer,
        iat: Math.floor(Date.now() / 1000),
        exp: Math.floor(Date.now() / 1000) + 60,
      };
      const none =
        `${Buffer.from('{"alg":"none"}').toString('base64url')}.` +
        `${Buffer.from(JSON.stringify(noneClaims)).toString('base64url')}.`;
      await refused(
        'alg none',
        handleJoin(t.ctx, { token: name, join_method: m.method, public_key: pub, payload: { id_token: none } }, '-'),
      );
      // only iss/aud/iat/exp: every platform claim missing
      await refused(
        'missing claims',
        join(
          Object.fromEntries(
            Object.keys(m.claims)
              .filter((k) => k !== 'aud')
              .map((k) => [k, undefined]),
          ),
        ),
      );
      // every platform claim of the wrong type
      await refused(
        'claims of the wrong type',
        join(
          Object.fromEntries(
            Object.keys(m.claims)
              .filter((k) => k !== 'aud')
              .map((k) => [k, 42]),
          ),
        ),
      );
      assert.equal((await t.ctx.backend.range('/bot_instances/')).length, before, 'a refused join created an instance');
      const token = await iss.sign({ ...m.claims, jti: `ok-${m.method}` });
      const ok = await handleJoin(
        t.ctx,
        { token: name, join_method: m.method, public_key: pub, payload: { id_token: token } },
        '-',
      );
      assert.equal(ok.renewable, false);
      await refused(
        'replay',
        handleJoin(t.ctx, { token: name, join_method: m.method, public_key: pub, payload: { id_token: token } }, '-'),
      );
    });
  }

  for (const m of METHODS) {
    it(`${m.method}: a token with its rules in spec.${m.method}.allow (Teleport's place) joins, a near miss does not`, async () => {
      const iss = issuers.get(m.method)!;
      const name = `${m.method}-teleport-${n++}`;
      const block = { ...((m.spec?.[m.method] as object | undefined) ?? {}), allow: [m.allow] };
      await t.admin.create(
        {
          kind: 'token',
          metadata: { name },
          spec: { join_method: m.method, bot_name: 'b', ...m.spec, [m.method]: block },
        },
        false,
        'admin',
      );
      const join = async (claims: JWTPayload) =>
        handleJoin(
          t.ctx,
          {
            token: name,
            join_method: m.method,
            public_key: pub,
            payload: { id_token: await iss.sign({ jti: `${Math.random()}`, ...m.claims, ...claims }) },
          },
          '-',
        );
      await assert.rejects(join(m.miss), (e) => isMwiError(e, 'JOIN_DENIED'), `${m.method}: near miss accepted`);
      assert.equal((await join({})).renewable, false);
    });
  }
});
