import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { JWTPayload } from 'jose';
import { startCluster, type TestCluster, joinFlags } from '../helpers/cluster.js';
import { cli } from '../helpers/procs.js';
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';

const CLUSTER = 'ci.example';

/** Each platform: its issuer, token spec, how tbot gets the token there, and a token of its real shape. */
const PLATFORMS: Array<{
  method: string;
  issuer: string;
  spec: string;
  allow: string;
  claims: JWTPayload;
  env: (i: TestIssuer, token: string) => NodeJS.ProcessEnv;
}> = [
  {
    method: 'gitlab',
    issuer: 'https://gitlab.com',
    spec: '',
    allow: '{ project_path: "grp/*" }',
    claims: { sub: 'project_path:grp/app:ref_type:branch:ref:main', project_path: 'grp/app', aud: CLUSTER },
    env: (_, t) => ({ TBOT_GITLAB_JWT: t }),
  },
  {
    method: 'circleci',
    issuer: 'https://oidc.circleci.com/org/org-1',
    spec: 'circleci: { organization_id: org-1 }',
    allow: '{ project_id: proj-1 }',
    claims: { sub: 'org/org-1/project/proj-1/user/u', aud: 'org-1', 'oidc.circleci.com/project-id': 'proj-1' },
    env: (_, t) => ({ CIRCLE_OIDC_TOKEN: t }),
  },
  {
    method: 'gcp',
    issuer: 'https://accounts.google.com',
    spec: '',
    allow: '{ project_ids: [p-1] }',
    claims: {
      sub: '42',
      email: 'vm@p-1.iam.gserviceaccount.com',
      google: { compute_engine: { project_id: 'p-1', zone: 'us-west1-b' } },
    },
    env: (i) => ({ GCE_METADATA_HOST: new URL(i.url).host }),
  },
  {
    method: 'terraform_cloud',
    issuer: 'https://app.terraform.io',
    spec: '',
    allow: '{ organization_id: o, workspace_name: prod }',
    claims: {
      sub: 'organization:acme:workspace:prod:run_phase:apply',
      aud: CLUSTER,
      terraform_organization_id: 'o',
      terraform_workspace_id: 'w',
      terraform_workspace_name: 'prod',
      terraform_run_phase: 'apply',
    },
    env: (_, t) => ({ TFC_WORKLOAD_IDENTITY_TOKEN: t }),
  },
  {
    method: 'spacelift',
    issuer: 'https://acme.app.spacelift.io',
    spec: 'spacelift: { hostname: acme.app.spacelift.io }',
    allow: '{ space_id: root }',
    claims: { sub: 'space:root:stack:s', aud: 'acme.app.spacelift.io', spaceId: 'root', callerType: 'stack' },
    env: (_, t) => ({ SPACELIFT_OIDC_TOKEN: t }),
  },
  {
    method: 'bitbucket',
    issuer: 'https://bb.example.com/oidc',
    spec: 'bitbucket: { identity_provider_url: "https://bb.example.com/oidc", audience: "ari:ws" }',
    allow: '{ repository_uuid: "{r}" }',
    claims: { sub: '{r}:{s}', aud: 'ari:ws', workspaceUuid: '{w}', repositoryUuid: '{r}' },
    env: (_, t) => ({ BITBUCKET_STEP_OIDC_TOKEN: t }),
  },
  {
    method: 'azure_devops',
    issuer: 'https://vstoken.dev.azure.com/org-guid',
    spec: 'azure_devops: { organization_id: org-guid }',
    allow: '{ project_name: web, pipeline_name: deploy }',
    claims: { sub: 'p://acme/web/deploy', aud: 'api://AzureADTokenExchange' },
    env: (i) => ({ SYSTEM_OIDCREQUESTURI: `${i.url}/azdo/oidctoken`, SYSTEM_ACCESSTOKEN: 'runner-request-token' }),
  },
];

describe('tbot joins from each CI/cloud platform and writes the identity output', () => {
  let c: TestCluster;
  const issuers = new Map<string, TestIssuer>();
  before(async () => {
    for (const p of PLATFORMS) issuers.set(p.method, await startIssuer({ issuer: p.issuer }));
    const overrides = PLATFORMS.map((p) => `    "${p.issuer}": "${issuers.get(p.method)!.url}"`).join('\n');
    c = await startCluster(CLUSTER, `oidc:\n  endpoint_overrides:\n${overrides}\n`);
    await c.addBot('ci', ['deploy']);
  });
  after(async () => {
    await c?.stop();
    for (const i of issuers.values()) await i.close();
  });

  for (const p of PLATFORMS) {
    it(p.method, async () => {
      const iss = issuers.get(p.method)!;
      const f = join(c.dir, `${p.method}.yaml`);
      writeFileSync(
        f,
        `kind: token\nversion: v2\nmetadata: { name: ${p.method}-tok }\nspec:\n  join_method: ${p.method}\n` +
          `  bot_name: ci\n  ${p.spec}\n  allow: [${p.allow}]\n`,
      );
      await c.tctlOk(['create', '-f', f]);
      iss.tokenEndpointClaims = p.claims;
      const out = join(c.dir, `${p.method}-out`);
      const r = await cli(
        'tbot',
        ['start', ...joinFlags(c, p.method, `${p.method}-tok`), '--destination-dir', out, '--oneshot'],
        {
          env: p.env(iss, await iss.sign(p.claims)),
        },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.ok(existsSync(join(out, 'key-cert.pub')) && existsSync(join(out, 'tlscert')));
      const joined = c.audit().filter((e) => e.event === 'bot.join' && e.join_method === p.method);
      assert.equal(joined.length, 1);
      assert.equal(joined[0]!.success, true, joined[0]!.reason);
    });
  }
});
