import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { handleJoin } from '../../src/auth/join.js';
import { tokenKey } from '../../src/auth/tokens.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { isMwiError } from '../../src/errors.js';
import { GITHUB_ISSUER } from '../../src/join/github/wire.js';
import { testContext } from '../helpers/auth-context.js';
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';

/**
 * Allow rules that match too much: a platform allow rule that does not name the workload (which
 * repository, project, organization, service account) matches every workload on the platform
 * (`allow: [{ref: refs/heads/main}]` is any repository on GitHub). As in Teleport, such a rule is
 * refused when the token is created, and so is a rule value of the wrong type, which would
 * otherwise never match and hide the mistake.
 */

interface Case {
  method: string;
  spec?: Record<string, unknown>;
  /** Rules that name the workload: accepted. */
  ok: Array<Record<string, unknown>>;
  /** Rules that do not: refused, naming the fields the method requires. */
  broad: Array<Record<string, unknown>>;
  requires: RegExp;
}

const CASES: Case[] = [
  {
    method: 'github',
    ok: [
      { repository: 'octo/app' },
      { repository_owner: 'octo', ref: 'refs/heads/main' },
      { sub: 'repo:octo/app:environment:prod' },
    ],
    broad: [{ ref: 'refs/heads/main' }, { workflow: 'deploy', environment: 'production' }, { actor: 'mona' }],
    requires: /repository, repository_owner, sub/,
  },
  {
    method: 'gitlab',
    ok: [
      { project_path: 'grp/app' },
      { namespace_path: 'grp', ref: 'main' },
      { sub: 'project_path:grp/app:ref_type:branch:ref:main' },
    ],
    broad: [
      { ref: 'main', ref_type: 'branch' },
      { pipeline_source: 'push' },
      { project_path: '*' },
      { namespace_path: '**' },
    ],
    requires: /sub, project_path, namespace_path/,
  },
  {
    method: 'circleci',
    spec: { circleci: { organization_id: 'org-1' } },
    ok: [{ project_id: 'proj-1' }, { context_id: 'ctx-1' }],
    broad: [],
    requires: /project_id, context_id/,
  },
  {
    method: 'kubernetes',
    spec: { kubernetes: { type: 'in_cluster' } },
    ok: [{ service_account: 'prod:deployer' }],
    broad: [
      { service_account: 'deployer' },
      { service_account: 'prod:' },
      { service_account: ':deployer' },
      { service_account: 'a:b:c' },
    ],
    requires: /namespace:name/,
  },
  {
    method: 'gcp',
    ok: [
      { project_ids: ['p-1'] },
      { project_ids: ['p-1'], locations: ['us-west1'], service_accounts: ['vm@p-1.iam.gserviceaccount.com'] },
    ],
    broad: [{ locations: ['us-west1'] }, { service_accounts: ['vm@p-1.iam.gserviceaccount.com'] }, { project_ids: [] }],
    requires: /project_ids/,
  },
  {
    method: 'terraform_cloud',
    ok: [
      { organization_name: 'acme', workspace_name: 'prod' },
      { organization_id: 'org-x', project_id: 'prj-1' },
    ],
    broad: [{ workspace_name: 'prod' }, { run_phase: 'apply' }, { organization_name: 'acme' }],
    requires: /organization_id, organization_name|project_id, project_name, workspace_id, workspace_name/,
  },
  {
    method: 'spacelift',
    spec: { spacelift: { hostname: 'acme.app.spacelift.io' } },
    ok: [{ space_id: 'root' }, { caller_id: 'infra', caller_type: 'stack' }],
    broad: [{ caller_type: 'stack' }, { scope: 'write' }],
    requires: /space_id, caller_id/,
  },
  {
    method: 'bitbucket',
    spec: {
      bitbucket: {
        identity_provider_url: 'https://api.bitbucket.org/2.0/workspaces/acme/pipelines-config/identity/oidc',
        audience: 'ari:ws',
      },
    },
    ok: [{ workspace_uuid: '{ws}' }, { repository_uuid: '{repo}', branch_name: 'main' }],
    broad: [{ branch_name: 'main' }, { deployment_environment_uuid: '{env}' }],
    requires: /workspace_uuid, repository_uuid/,
  },
  {
    method: 'azure_devops',
    spec: { azure_devops: { organization_id: 'org-guid' } },
    ok: [{ sub: 'p://acme/web/deploy' }, { project_name: 'web', pipeline_name: 'deploy' }, { project_id: 'pid' }],
    broad: [{ pipeline_name: 'deploy' }, { repository_ref: 'refs/heads/main' }, { definition_id: '7' }],
    requires: /sub, project_name, project_id/,
  },
];

/** Values of the wrong type for a field, per method: refused at creation, naming the field. */
const WRONG_TYPES: Array<[string, Record<string, unknown> | undefined, Record<string, unknown>, string]> = [
  ['github', undefined, { repository: 42 }, 'repository'],
  ['github', undefined, { repository: 'octo/app', ref: ['refs/heads/main'] }, 'ref'],
  ['github', undefined, { repository: { $ne: 'x' } }, 'repository'],
  ['github', undefined, { repository: '' }, 'repository'],
  ['github', undefined, { repository: 'octo/app', environment: null }, 'environment'],
  ['gitlab', undefined, { project_path: 'grp/app', ref_protected: 'yes' }, 'ref_protected'],
  ['gitlab', undefined, { project_path: 7 }, 'project_path'],
  ['circleci', { circleci: { organization_id: 'org-1' } }, { project_id: 1234 }, 'project_id'],
  ['kubernetes', { kubernetes: { type: 'in_cluster' } }, { service_account: ['prod:deployer'] }, 'service_account'],
  ['gcp', undefined, { project_ids: 'p-1' }, 'project_ids'],
  ['gcp', undefined, { project_ids: ['p-1', 42] }, 'project_ids'],
  ['terraform_cloud', undefined, { organization_name: 'acme', workspace_name: true }, 'workspace_name'],
  ['spacelift', { spacelift: { hostname: 'acme.app.spacelift.io' } }, { space_id: 1 }, 'space_id'],
  [
    'bitbucket',
    { bitbucket: { identity_provider_url: 'https://bb.example.com/oidc', audience: 'a' } },
    { workspace_uuid: ['{ws}'] },
    'workspace_uuid',
  ],
  ['azure_devops', { azure_devops: { organization_id: 'org-guid' } }, { project_id: 5 }, 'project_id'],
];

describe('allow rules that match too much are refused when the token is created', () => {
  let t: Awaited<ReturnType<typeof testContext>>;
  let n = 0;
  const create = (method: string, spec: Record<string, unknown> | undefined, allow: unknown[]) =>
    t.admin.create(
      {
        kind: 'token',
        metadata: { name: `${method}-${n++}` },
        spec: { join_method: method, bot_name: 'b', allow, ...spec },
      },
      false,
      'admin',
    );

  let gh: TestIssuer;
  before(async () => {
    gh = await startIssuer({ issuer: GITHUB_ISSUER });
    t = await testContext({ endpointOverrides: { [GITHUB_ISSUER]: gh.url } });
    await t.admin.create({ kind: 'role', metadata: { name: 'r' }, spec: {} }, false, 'admin');
    await t.admin.create({ kind: 'bot', metadata: { name: 'b' }, spec: { roles: ['r'] } }, false, 'admin');
  });

  for (const c of CASES) {
    it(`allow rules too broad: ${c.method} refuses a rule that names no workload, naming the rule and the fields it requires`, async () => {
      for (const rule of c.ok) await create(c.method, c.spec, [rule]);
      for (const rule of c.broad) {
        await assert.rejects(
          create(c.method, c.spec, [rule]),
          (e) => isMwiError(e, 'BAD_REQUEST') && /^spec\.allow\[0\]/.test(e.message) && c.requires.test(e.message),
          `${c.method}: ${JSON.stringify(rule)} was accepted`,
        );
      }
      // a broad rule anywhere in the list: the error names that rule
      const broad = c.broad[0];
      if (broad)
        await assert.rejects(
          create(c.method, c.spec, [c.ok[0], broad]),
          (e) => isMwiError(e, 'BAD_REQUEST') && /^spec\.allow\[1\]/.test(e.message),
        );
    });
  }

  it('allow rules too broad: rule values of the wrong type are refused at creation, naming the field', async () => {
    const accepted: string[] = [];
    for (const [method, spec, rule, field] of WRONG_TYPES) {
      try {
        await create(method, spec, [rule]);
        accepted.push(`${method} ${JSON.stringify(rule)}`);
      } catch (err) {
        assert.ok(isMwiError(err, 'BAD_REQUEST'), String(err));
        assert.match(
          err.message,
          new RegExp(`^spec\\.allow\\[0\\]\\.${field}: `),
          `${method} ${JSON.stringify(rule)}: ${err.message}`,
        );
      }
    }
    assert.deepEqual(accepted, []);
  });

  after(async () => {
    await gh?.close();
  });

  it('allow rules too broad: a broad rule stored before this check matches nothing at join time', async () => {
    // written straight to storage, as a token created by an older version would be
    const spec = { join_method: 'github', bot_name: 'b', allow: [{ ref: 'refs/heads/main' }, { repository: 42 }] };
    await t.ctx.backend.create(
      tokenKey('legacy-broad'),
      JSON.stringify({ kind: 'token', version: 'v2', metadata: { name: 'legacy-broad' }, spec }),
    );
    const idToken = await gh.sign({
      sub: 'repo:evil/any:ref:refs/heads/main',
      repository: 'evil/any',
      ref: 'refs/heads/main',
      aud: 'unit',
    });
    const pub = (await generateKeys('ec-p256')).publicKeyPem;
    await assert.rejects(
      handleJoin(
        t.ctx,
        { token: 'legacy-broad', join_method: 'github', public_key: pub, payload: { id_token: idToken } },
        '-',
      ),
      (e) => isMwiError(e, 'JOIN_DENIED') && /matches none/.test(e.message),
    );
    const reason = (await t.ctx.audit.recent(1, 'bot.join'))[0]?.reason as string;
    assert.match(reason, /rules ignored: allow\[0\]: the rule must name the workload/);
  });

  it('allow rules too broad: a rule that is not an object is refused', async () => {
    for (const rule of ['repository: octo/app', ['octo/app'], null, 42]) {
      await assert.rejects(
        create('github', undefined, [rule]),
        (e) => isMwiError(e, 'BAD_REQUEST') && /^spec\.allow\[0\]/.test(e.message),
        JSON.stringify(rule),
      );
    }
  });
});
