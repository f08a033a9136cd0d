import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { addJoinToken, clusterFile, daemonArgs, joinFlags, type TestCluster } from '../helpers/cluster.js';
import { cli, spawnCli, tempDir, waitFor } from '../helpers/procs.js';
import { assertSshLogin, startSshCluster, type SshCluster } from '../helpers/ssh-cluster.js';
import { startAzure, SUBSCRIPTION, tokenClaims, VM_ID, type TestAzure } from '../helpers/azure.js';

/**
 * tbot on an "Azure VM": IMDS, the issuing CA's download and the tenant's token issuer on
 * 127.0.0.1 (TBOT_AZURE_IMDS_ENDPOINT; mwi.yaml azure.root_cas and oidc.endpoint_overrides), the
 * real mwi, tctl and tbot, and a real sshd the bot's certificates log in to.
 */
describe('azure: tbot joins from an Azure VM, one-shot and as a daemon, and logs in over SSH', () => {
  const tmp = tempDir('azure-tbot');
  let az: TestAzure;
  let scene: SshCluster;
  let c: TestCluster;
  let tokenName: string;
  const env = () => ({ TBOT_AZURE_IMDS_ENDPOINT: az.imdsUrl });
  const joins = () => c.audit().filter((e) => e.event === 'bot.join' && e.join_method === 'azure');
  /** The client_id of each managed identity access token tbot asked IMDS for. */
  const tokenClientIds = () =>
    az.requests.filter((q) => q.path === '/metadata/identity/oauth2/token').map((q) => q.query.client_id);
  /** tbot --oneshot from a join URI naming the managed identity `clientId`; its files in `<dir>-bot`, `<dir>-out`. */
  const joinUriOnce = (clientId: string, dir: string) =>
    cli(
      'tbot',
      [
        'start',
        '--oneshot',
        '--join-uri',
        `tbot+auth+azure://${tokenName}:${clientId}@${c.addr}`,
        '--ca-pin',
        c.caPin,
        '--data-dir',
        join(c.dir, `${dir}-bot`),
        '--destination-dir',
        join(c.dir, `${dir}-out`),
      ],
      { env: env() },
    );

  before(async () => {
    az = await startAzure(tmp.path);
    scene = await startSshCluster('azure.example', az.mwiYaml, 'vm');
    c = scene.c;
  });
  after(async () => {
    await scene?.stop();
    await az?.close();
    tmp.cleanup();
  });

  it("tctl tokens add --join-method azure --spec: the rules are stored in Teleport's place", async () => {
    const spec = clusterFile(
      c,
      'azure-spec.yaml',
      `azure:\n  allow:\n    - subscription: ${SUBSCRIPTION}\n      resource_groups: [prod-rg]\n`,
    );
    const out = await addJoinToken(c, 'vm', 'azure', ['--spec', spec]);
    assert.equal(out.join_method, 'azure');
    tokenName = out.token;
    const printed = parse(await c.tctlOk(['get', `token/${tokenName}`])) as { spec: Record<string, any> };
    assert.deepEqual(printed.spec.azure, { allow: [{ subscription: SUBSCRIPTION, resource_groups: ['prod-rg'] }] });
    assert.equal(printed.spec.allow, undefined);
  });

  it('one-shot: the SSH certificate tbot writes logs in to a real sshd', async () => {
    const out = join(c.dir, 'oneshot-out');
    const r = await cli(
      'tbot',
      [
        'start',
        ...joinFlags(c, 'azure', tokenName),
        '--data-dir',
        join(c.dir, 'oneshot-bot'),
        '--destination-dir',
        out,
        '--oneshot',
      ],
      { env: env() },
    );
    assert.equal(r.code, 0, r.stderr);
    await assertSshLogin(scene, out, 'hello-from-azure');
    const j = joins().at(-1)!;
    assert.equal(j.success, true, j.reason);
    assert.equal(j.vm_id, VM_ID);
    assert.equal(j.resource_group, 'Prod-RG');
  });

  it('daemon: every identity is a fresh join (a fresh nonce) that continues the same bot instance', async () => {
    const out = join(c.dir, 'daemon-out');
    const before = joins().length;
    const docs = () => az.requests.filter((r) => r.path === '/metadata/attested/document');
    const docsBefore = docs().length;
    const tbot = spawnCli(
      'tbot',
      daemonArgs(c, 'azure', tokenName, {
        storage: ['--data-dir', join(c.dir, 'daemon-bot')],
        out,
        renewal: '3s',
      }),
      env(),
    );
    try {
      await waitFor('three azure joins', () => joins().length >= before + 3, 40_000);
      const mine = joins().slice(before);
      assert.ok(
        mine.every((e) => e.success === true),
        JSON.stringify(mine.map((e) => e.reason)),
      );
      // the first creates the instance; the next ones present its identity and continue it
      assert.equal(new Set(mine.map((e) => e.bot_instance_id)).size, 1);
      assert.deepEqual(
        mine.slice(1, 3).map((e) => e.refresh),
        [true, true],
      );
      assert.deepEqual(
        mine.slice(0, 3).map((e) => e.generation),
        [1, 2, 3],
      );
      const nonces = docs()
        .slice(docsBefore)
        .map((r) => r.query.nonce);
      assert.equal(new Set(nonces).size, nonces.length, 'each join asked IMDS with a new nonce');
      assert.ok(existsSync(join(out, 'key-cert.pub')));
      await assertSshLogin(scene, out, 'still-here');
    } finally {
      tbot.kill('SIGTERM');
    }
  });

  it('tbot.yaml onboarding.azure.client_id picks a user-assigned identity', async () => {
    az.identities.set('5b9f7c1e-client', tokenClaims({ userAssigned: true }));
    const file = join(c.dir, 'tbot-azure.yaml');
    writeFileSync(
      file,
      [
        'version: v2',
        `auth_server: ${c.addr}`,
        'onboarding:',
        `  ca_pins: ["${c.caPin}"]`,
        '  join_method: azure',
        `  token: ${tokenName}`,
        '  azure:',
        '    client_id: 5b9f7c1e-client',
        'storage: { type: memory }',
        'oneshot: true',
        'services:',
        `  - { type: identity, destination: { type: directory, path: ${join(c.dir, 'uai-out')} } }`,
        '',
      ].join('\n'),
    );
    az.requests.length = 0;
    const r = await cli('tbot', ['start', '-c', file], { env: env() });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(tokenClientIds(), ['5b9f7c1e-client']);
  });

  it("a join URI's parameter is onboarding.azure.client_id, as in Teleport", async () => {
    az.requests.length = 0;
    const r = await joinUriOnce('5b9f7c1e-client', 'uri');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(tokenClientIds(), ['5b9f7c1e-client']);
  });

  it('a VM in a resource group the rules do not name is refused; the audit log says why', async () => {
    az.identities.set('staging-client', tokenClaims({ userAssigned: true, rg: 'staging' }));
    az.vmIn('staging');
    const r = await joinUriOnce('staging-client', 'refused');
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /matches none of the token's allow rules/);
    const refusal = joins().at(-1)!;
    assert.match(refusal.reason as string, /no allow rule matches .*"resource_group":"staging"/);
    // the rules again on the refused VM's recorded claims
    const explained = await c.tctl(['tokens', 'test', tokenName, '--from-audit', refusal.uid as string]);
    assert.equal(explained.code, 1, explained.stderr);
    assert.match(explained.stdout, /FAIL +resource_groups/);
    const idToken = await c.tctl(['tokens', 'test', tokenName, '--id-token', '-']);
    assert.notEqual(idToken.code, 0);
    assert.match(idToken.stderr, /cannot be captured and tested later: test a refused join's claims with --from-audit/);
  });

  it('an identity IMDS does not know is a configuration error naming onboarding.azure.client_id (exit 2)', async () => {
    const r = await joinUriOnce('no-such-client', 'unknown');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /onboarding\.azure\.client_id: IMDS refused a managed identity access token: HTTP 400/);
  });

  it('off an Azure VM (no IMDS), tbot says so and where it looked', async () => {
    const r = await cli(
      'tbot',
      [
        'start',
        '--oneshot',
        ...joinFlags(c, 'azure', tokenName),
        '--data-dir',
        join(c.dir, 'noimds-bot'),
        '--destination-dir',
        join(c.dir, 'noimds-out'),
      ],
      { env: { TBOT_AZURE_IMDS_ENDPOINT: 'http://127.0.0.1:9/metadata' } },
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot reach the Azure Instance Metadata Service at http:\/\/127\.0\.0\.1:9\/metadata/);
  });
});

describe('azure: mwi.yaml azure.root_cas', () => {
  it('mwi start refuses a root file it cannot read, naming the field (exit 2)', async () => {
    const dir = tempDir('azure-mwi-yaml');
    try {
      const config = join(dir.path, 'mwi.yaml');
      writeFileSync(config, `azure:\n  root_cas: [${join(dir.path, 'missing.pem')}]\n`);
      const r = await cli('mwi', [
        'start',
        '--config',
        config,
        '--data-dir',
        join(dir.path, 'data'),
        '--listen',
        '127.0.0.1:0',
        '--workers',
        '1',
      ]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /azure\.root_cas\[0\]: cannot read .*missing\.pem: no such file or directory \(ENOENT\)/);
    } finally {
      dir.cleanup();
    }
  });
});
