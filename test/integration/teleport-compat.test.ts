import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { GITHUB_ISSUER } from '../../src/join/github/wire.js';
import { joinMethodInfo } from '../../src/join/catalog.js';
import { rulesUnderMethod } from '../../src/join/placement.js';
import { joinFlags, startCluster, type TestCluster } from '../helpers/cluster.js';
import { cli } from '../helpers/procs.js';
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';

// Files in Teleport's shapes (test/compat, written from Teleport's field definitions) load with
// `tctl create -f` as they are; `tctl get` prints them back in Teleport's form, and its output
// re-applies unchanged.

// compiled to dist/test/integration: the files are at ../../../test/compat
const COMPAT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/compat');

type Doc = { kind: string; metadata: { name: string }; spec: Record<string, any> };

describe('Teleport exports load with tctl create and round-trip through tctl get', () => {
  let c: TestCluster;
  let gh: TestIssuer;
  let k8s: TestIssuer;

  before(async () => {
    gh = await startIssuer({ issuer: GITHUB_ISSUER });
    k8s = await startIssuer({ issuer: 'https://kubernetes.default.svc.cluster.local', alg: 'ES256' });
    c = await startCluster('compat.example', `oidc:\n  endpoint_overrides:\n    "${GITHUB_ISSUER}": "${gh.url}"\n`);
    // the role and bot the files name, loaded from Teleport's exports themselves
    for (const f of ['role-v8.yaml', 'bot.yaml']) await c.tctlOk(['create', '-f', join(COMPAT, 'resources', f)]);
  });
  after(async () => {
    await c?.stop();
    await gh?.close();
    await k8s?.close();
  });

  /** `tctl get REF` as YAML, its output re-applied with --force, and `tctl get REF` again: the same text. */
  async function roundTrip(ref: string): Promise<string> {
    const first = await c.tctlOk(['get', ref]);
    const file = join(c.dir, `${ref.replaceAll('/', '_')}.get.yaml`);
    writeFileSync(file, first);
    const again = await c.tctl(['create', '-f', file, '--force']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(await c.tctlOk(['get', ref]), first, `${ref}: tctl get changed after re-applying its output`);
    return first;
  }

  const tokenFiles = readdirSync(join(COMPAT, 'tokens')).filter((f) => f.endsWith('.yaml'));
  it('there is a Teleport-shaped token file for every join method mwi has', async () => {
    const { JOIN_METHODS } = await import('../../src/join/catalog.js');
    assert.deepEqual(tokenFiles.map((f) => f.replace(/\.yaml$/, '')).sort(), JOIN_METHODS.map((m) => m.name).sort());
  });

  for (const f of tokenFiles) {
    const method = f.replace(/\.yaml$/, '');
    it(`token ${method}: loads, prints in Teleport's form, round-trips`, async () => {
      const path = join(COMPAT, 'tokens', f);
      const written = parse(readFileSync(path, 'utf8')) as Doc;
      const r = await c.tctl(['create', '-f', path]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^token "[^"]+" has been created$/m);
      // only the bound_keypair file carries a status (Teleport's): its note
      const notes = r.stderr.split('\n').filter((l) => l.startsWith('note: '));
      const expected: Record<string, string> = {
        bound_keypair: 'status is written by the Auth Service (ignored)',
      };
      assert.deepEqual(notes, expected[method] ? [`note: token "${written.metadata.name}": ${expected[method]}`] : []);
      const printed = parse(await c.tctlOk(['get', `token/${written.metadata.name}`])) as Doc;
      assert.equal(printed.spec.join_method, method);
      // Teleport keeps the rules under the method, except for ec2 and iam (spec.allow)
      if (joinMethodInfo(method)?.allow === 'spec') assert.deepEqual(printed.spec.allow, written.spec.allow);
      else assert.equal(printed.spec.allow, undefined, 'spec.allow is not where Teleport keeps the rules');
      if (rulesUnderMethod(method)) assert.deepEqual(printed.spec[method].allow, written.spec[method].allow);
      if (method === 'ec2') assert.equal(printed.spec.aws_iid_ttl, '5m0s');
      // a token named by its secret is printed by its id: the secret is not stored
      if (method === 'token') assert.match(printed.metadata.name, /^h-[0-9a-f]{16}$/);
      else assert.equal(printed.metadata.name, written.metadata.name);
      if (method === 'bound_keypair') {
        const bk = printed.spec.bound_keypair;
        assert.deepEqual(bk.recovery, { limit: 1, mode: 'standard' });
        assert.deepEqual(Object.keys(bk.onboarding), ['registration_secret_hash']);
        assert.equal(bk.rotate_after, undefined);
      }
      await roundTrip(`token/${printed.metadata.name}`);
    });
  }

  it('a bound_keypair token without a secret or key: tctl create prints the one it generated, once', async () => {
    const file = join(c.dir, 'bk-nosecret.yaml');
    writeFileSync(
      file,
      readFileSync(join(COMPAT, 'tokens', 'bound_keypair.yaml'), 'utf8')
        .replace('name: compat-bound-keypair', 'name: compat-bk-generated')
        .replace(/registration_secret: 3b9f\w+/, 'registration_secret: ""'),
    );
    const r = await c.tctl(['create', '-f', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^registration_secret: [0-9a-f]{32} \(shown once: the Auth Service keeps only its hash\)$/m);
  });

  it("the deprecated spec.allow loads with a warning, and is stored and printed in Teleport's place", async () => {
    const file = join(c.dir, 'gh-old.yaml');
    writeFileSync(
      file,
      'kind: token\nversion: v2\nmetadata: { name: gh-old }\nspec:\n  join_method: github\n  bot_name: compat\n' +
        '  allow:\n    - { repository: octo/app }\n',
    );
    const r = await c.tctl(['create', '-f', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /^note: token "gh-old": spec\.allow is deprecated for join method github: the rules were stored as spec\.github\.allow/m,
    );
    const printed = parse(await roundTrip('token/gh-old')) as Doc;
    assert.deepEqual(printed.spec, {
      roles: ['Bot'],
      join_method: 'github',
      bot_name: 'compat',
      github: { allow: [{ repository: 'octo/app' }] },
    });
  });

  it('Teleport exports of a role v8, a bot and a lock load with notes on what mwi ignores, and round-trip', async () => {
    // the role and the bot were created in before(): create again with --force to see their notes
    const role = await c.tctl(['create', '-f', join(COMPAT, 'resources', 'role-v8.yaml'), '--force']);
    assert.equal(role.code, 0, role.stderr);
    const notes = (r: { stderr: string }) => r.stderr.split('\n').filter((l) => l.startsWith('note: '));
    assert.deepEqual(notes(role), [
      'note: role "compat-deployer": spec.options.cert_format, spec.options.create_host_user_mode, ' +
        'spec.options.desktop_clipboard, spec.options.desktop_directory_sharing, spec.options.enhanced_recording, ' +
        'spec.options.idp, spec.options.record_session, spec.options.ssh_file_copy are not used by mwi (ignored)',
      'note: role "compat-deployer": spec.allow.app_labels, spec.allow.kubernetes_groups, ' +
        'spec.allow.kubernetes_labels, spec.allow.kubernetes_resources, spec.allow.rules are not used by mwi (ignored)',
    ]);
    const bot = await c.tctl(['create', '-f', join(COMPAT, 'resources', 'bot.yaml'), '--force']);
    assert.equal(bot.code, 0, bot.stderr);
    assert.deepEqual(notes(bot), [
      'note: bot "compat": metadata.revision is not used by mwi (ignored)',
      'note: bot "compat": status is written by the Auth Service (ignored)',
    ]);
    const lock = await c.tctl(['create', '-f', join(COMPAT, 'resources', 'lock.yaml')]);
    assert.equal(lock.code, 0, lock.stderr);
    assert.deepEqual(notes(lock), []);
    const printed = parse(await roundTrip('lock/0b6f3e2a-9c1d-4e8f-a7b6-5d4c3b2a1f0e')) as Doc;
    assert.equal(printed.spec.created_at, '2025-06-01T10:00:00Z');
    assert.equal(printed.spec.created_by, 'alice');
    await c.tctlOk(['rm', 'lock/0b6f3e2a-9c1d-4e8f-a7b6-5d4c3b2a1f0e']);
    await roundTrip('role/compat-deployer');
    await roundTrip('bot/compat');
    // what mwi uses of them: the role's logins with the bot's trait, its max_session_ttl
    const stored = parse(await c.tctlOk(['get', 'role/compat-deployer'])) as Doc;
    assert.deepEqual(stored.spec.allow.logins, ['deploy', '{{internal.logins}}']);
  });

  it('a role mwi cannot honour is refused, naming the field and why', async () => {
    const file = join(c.dir, 'role-nodes.yaml');
    writeFileSync(
      file,
      'kind: role\nversion: v8\nmetadata: { name: staging-only }\nspec:\n  allow:\n    logins: [deploy]\n' +
        '    node_labels: { env: staging }\n',
    );
    const r = await c.tctl(['create', '-f', file]);
    assert.notEqual(r.code, 0, r.stderr);
    assert.match(r.stderr, /spec\.allow\.node_labels: an mwi certificate is accepted by every host that trusts/);
    assert.notEqual((await c.tctl(['get', 'role/staging-only'])).code, 0, 'nothing was written');
  });

  it("a token in Teleport's form joins for real: github (OIDC issuer) and kubernetes static_jwks", async () => {
    const ghFile = join(c.dir, 'gh-new.yaml');
    writeFileSync(
      ghFile,
      'kind: token\nversion: v2\nmetadata: { name: gh-new }\nspec:\n  join_method: github\n  bot_name: compat\n' +
        '  roles: [Bot]\n  github:\n    allow:\n      - { repository: octo/app, ref: refs/heads/main }\n',
    );
    await c.tctlOk(['create', '-f', ghFile]);
    gh.tokenEndpointClaims = {
      sub: 'repo:octo/app:ref:refs/heads/main',
      repository: 'octo/app',
      ref: 'refs/heads/main',
    };
    const ghOut = join(c.dir, 'gh-new-out');
    const ghRun = await cli(
      'tbot',
      ['start', ...joinFlags(c, 'github', 'gh-new'), '--destination-dir', ghOut, '--oneshot'],
      {
        env: {
          ACTIONS_ID_TOKEN_REQUEST_URL: `${gh.url}/token`,
          ACTIONS_ID_TOKEN_REQUEST_TOKEN: 'runner-request-token',
        },
      },
    );
    assert.equal(ghRun.code, 0, ghRun.stderr);
    assert.ok(existsSync(join(ghOut, 'key-cert.pub')));

    const k8sFile = join(c.dir, 'k8s-new.yaml');
    writeFileSync(
      k8sFile,
      'kind: token\nversion: v2\nmetadata: { name: k8s-new }\nspec:\n  join_method: kubernetes\n  bot_name: compat\n' +
        `  kubernetes:\n    type: static_jwks\n    static_jwks:\n      jwks: '${k8s.jwks()}'\n` +
        '    allow:\n      - { service_account: "prod:deployer" }\n',
    );
    await c.tctlOk(['create', '-f', k8sFile]);
    const saToken = join(c.dir, 'sa-token');
    writeFileSync(
      saToken,
      await k8s.sign({
        aud: ['compat.example'],
        sub: 'system:serviceaccount:prod:deployer',
        'kubernetes.io': { namespace: 'prod', serviceaccount: { name: 'deployer' }, pod: { name: 'deployer-7f' } },
      }),
    );
    const k8sOut = join(c.dir, 'k8s-new-out');
    const k8sRun = await cli(
      'tbot',
      ['start', ...joinFlags(c, 'kubernetes', 'k8s-new'), '--destination-dir', k8sOut, '--oneshot'],
      { env: { KUBERNETES_TOKEN_PATH: saToken } },
    );
    assert.equal(k8sRun.code, 0, k8sRun.stderr);
    assert.ok(existsSync(join(k8sOut, 'key-cert.pub')));
    const joins = c.audit().filter((e) => e.event === 'bot.join' && e.success);
    assert.ok(joins.some((e) => e.join_method === 'github' && e.repository === 'octo/app'));
    assert.ok(joins.some((e) => e.join_method === 'kubernetes' && e.service_account === 'prod:deployer'));
  });
});
