import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GITHUB_ISSUER } from '../../src/join/github/wire.js';
import { daemonArgs, joinFlags, oidcOverride, type TestCluster } from '../helpers/cluster.js';
import { cli, exited, spawnCli, waitFor } from '../helpers/procs.js';
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';
import { assertSshLogin, startSshCluster, type SshCluster } from '../helpers/ssh-cluster.js';

/** GitHub Actions and Kubernetes joins with the real tbot and mwi, ending in a real sshd login. */
describe('platform-signed joins end to end (github, kubernetes)', () => {
  let scene: SshCluster;
  let c: TestCluster;
  let gh: TestIssuer;
  let k8s: TestIssuer;
  const tbot = (method: string, token: string, out: string, env: NodeJS.ProcessEnv) =>
    cli('tbot', ['start', ...joinFlags(c, method, token), '--destination-dir', out, '--oneshot'], { env });

  before(async () => {
    gh = await startIssuer({ issuer: GITHUB_ISSUER });
    k8s = await startIssuer({ issuer: 'https://kubernetes.default.svc.cluster.local', alg: 'ES256' });
    // the real GitHub issuer name, its keys fetched from the test issuer (mwi.yaml oidc.endpoint_overrides)
    scene = await startSshCluster('platform.example', oidcOverride(GITHUB_ISSUER, gh.url), 'ci');
    c = scene.c;
  });
  after(async () => {
    await scene?.stop();
    await gh?.close();
    await k8s?.close();
  });

  it('github: tbot fetches an ID token from the Actions runtime, joins, and the SSH cert logs in', async () => {
    const spec = join(c.dir, 'gh.yaml');
    writeFileSync(
      spec,
      'kind: token\nversion: v2\nmetadata: { name: gh-deploy }\nspec:\n  join_method: github\n  bot_name: ci\n' +
        '  allow:\n    - { repository: octo/app, ref: refs/heads/main }\n',
    );
    await c.tctlOk(['create', '-f', spec]);
    gh.tokenEndpointClaims = {
      sub: 'repo:octo/app:ref:refs/heads/main',
      repository: 'octo/app',
      repository_owner: 'octo',
      ref: 'refs/heads/main',
      ref_type: 'branch',
      workflow: 'deploy',
      actor: 'mona',
    };
    const env = {
      ACTIONS_ID_TOKEN_REQUEST_URL: `${gh.url}/token?api-version=2.0`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'runner-request-token',
    };
    const r = await tbot('github', 'gh-deploy', join(c.dir, 'gh-out'), env);
    assert.equal(r.code, 0, r.stderr);
    await assertSshLogin(scene, join(c.dir, 'gh-out'), 'from-github-actions');
    const joined = c.audit().find((e) => e.event === 'bot.join' && e.success && e.join_method === 'github');
    assert.equal(joined?.repository, 'octo/app');
  });

  it('allow rules too broad: tctl create refuses a github rule that names no repository, naming the rule and the fields', async () => {
    const spec = join(c.dir, 'gh-broad.yaml');
    writeFileSync(
      spec,
      'kind: token\nversion: v2\nmetadata: { name: gh-broad }\nspec:\n  join_method: github\n  bot_name: ci\n' +
        '  allow:\n    - { ref: refs/heads/main }\n',
    );
    const r = await c.tctl(['create', '-f', spec]);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /spec\.allow\[0\]: the rule must name the workload with at least one of: repository, repository_owner, sub/,
    );
    assert.doesNotMatch(await c.tctlOk(['tokens', 'ls']), /gh-broad/);
  });

  it('github: a stored identity that expired is replaced by a fresh join (no recovery needed)', async () => {
    gh.tokenEndpointClaims = {
      sub: 'repo:octo/app:ref:refs/heads/main',
      repository: 'octo/app',
      ref: 'refs/heads/main',
    };
    const env = {
      ACTIONS_ID_TOKEN_REQUEST_URL: `${gh.url}/token`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'runner-request-token',
    };
    const args = [
      'start',
      ...joinFlags(c, 'github', 'gh-deploy'),
      '--data-dir',
      join(c.dir, 'gh-store'),
      '--destination-dir',
      join(c.dir, 'gh-out4'),
      '--certificate-ttl',
      '2s',
      '--renewal-interval',
      '1s',
      '--oneshot',
    ];
    assert.equal((await cli('tbot', args, { env })).code, 0);
    await new Promise((r) => setTimeout(r, 2200));
    const again = await cli('tbot', args, { env });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /the stored identity expired; joining again/);
  });

  it('github: a daemon re-joins for every identity and keeps one bot instance', async () => {
    gh.tokenEndpointClaims = {
      sub: 'repo:octo/app:ref:refs/heads/main',
      repository: 'octo/app',
      ref: 'refs/heads/main',
    };
    const env = {
      ACTIONS_ID_TOKEN_REQUEST_URL: `${gh.url}/token`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'runner-request-token',
    };
    const count = async () =>
      JSON.parse(await c.tctlOk(['bots', 'instances', 'ls', 'ci', '--format', 'json'])) as Array<{
        status: { generation: number };
      }>;
    const before = (await count()).length;
    const tbot = spawnCli(
      'tbot',
      daemonArgs(c, 'github', 'gh-deploy', {
        storage: ['--data-dir', join(c.dir, 'gh-daemon-store')],
        out: join(c.dir, 'gh-daemon'),
        renewal: '1s',
      }),
      env,
    );
    try {
      await waitFor('three refreshes', () => (tbot.out().match(/refreshed identity/g) ?? []).length >= 3, 20_000);
    } finally {
      tbot.kill('SIGTERM');
      await exited(tbot);
    }
    const after = await count();
    assert.equal(after.length, before + 1, tbot.out());
    assert.ok(after.some((i) => i.status.generation >= 4));
  });

  it('github: a workflow without id-token permission gets a clear error; another repository is refused', async () => {
    const r = await tbot('github', 'gh-deploy', join(c.dir, 'gh-out2'), {
      ACTIONS_ID_TOKEN_REQUEST_URL: '',
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: '',
    });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /needs "permissions: id-token: write"/);
    gh.tokenEndpointClaims = { ...gh.tokenEndpointClaims, repository: 'octo/other', jti: 'x' };
    const env = {
      ACTIONS_ID_TOKEN_REQUEST_URL: `${gh.url}/token`,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'runner-request-token',
    };
    const refused = await tbot('github', 'gh-deploy', join(c.dir, 'gh-out3'), env);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /matches none of the token's allow rules/);
  });

  it('kubernetes (static_jwks): a projected token from KUBERNETES_TOKEN_PATH joins; the SSH cert logs in', async () => {
    const spec = join(c.dir, 'k8s.yaml');
    writeFileSync(
      spec,
      `kind: token\nversion: v2\nmetadata: { name: k8s-deploy }\nspec:\n  join_method: kubernetes\n` +
        `  bot_name: ci\n  kubernetes:\n    type: static_jwks\n    static_jwks:\n      jwks: '${k8s.jwks()}'\n` +
        `  allow:\n    - { service_account: "prod:deployer" }\n`,
    );
    await c.tctlOk(['create', '-f', spec]);
    const tokenFile = join(c.dir, 'sa-token');
    writeFileSync(
      tokenFile,
      await k8s.sign({
        aud: ['platform.example'],
        sub: 'system:serviceaccount:prod:deployer',
        'kubernetes.io': {
          namespace: 'prod',
          serviceaccount: { name: 'deployer', uid: 'u' },
          pod: { name: 'deployer-7f', uid: 'p' },
        },
      }),
    );
    const r = await tbot('kubernetes', 'k8s-deploy', join(c.dir, 'k8s-out'), { KUBERNETES_TOKEN_PATH: tokenFile });
    assert.equal(r.code, 0, r.stderr);
    await assertSshLogin(scene, join(c.dir, 'k8s-out'), 'from-kubernetes');
    // the same token again: a replay
    const again = await tbot('kubernetes', 'k8s-deploy', join(c.dir, 'k8s-out2'), { KUBERNETES_TOKEN_PATH: tokenFile });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already used/);
  });
});
