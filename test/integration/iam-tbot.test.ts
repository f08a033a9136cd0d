// The iam join end to end: the real mwi (its STS requests forwarded to the SigV4-checking stand-in),
// tctl, tbot with AWS credentials from the environment and from an instance profile (local IMDSv2),
// and a real sshd the issued certificate logs in to.
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { addJoinToken, clusterFile, daemonArgs, joinFlags, type TestCluster } from '../helpers/cluster.js';
import { startImds, type TestImds } from '../helpers/imds.js';
import { cli, exited, spawnCli, tempDir, waitFor } from '../helpers/procs.js';
import { assertSshLogin, startSshCluster, type SshCluster } from '../helpers/ssh-cluster.js';
import { startSts, testPrincipal, type TestSts } from '../helpers/sts.js';

const ACCOUNT = '123456789012';

describe('iam: tbot joins with AWS credentials, STS (the stand-in) says who signed', () => {
  let scene: SshCluster;
  let c: TestCluster;
  let sts: TestSts;
  let imds: TestImds;
  const home = tempDir('iam-home');
  const ci = testPrincipal(ACCOUNT, 'ci-role', 'build-42');
  const vm = testPrincipal(ACCOUNT, 'ec2-role', 'i-0abc');
  /** tbot's environment: no AWS setting of this machine, none of its user's files. */
  const awsEnv = (extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv => ({
    HOME: home.path,
    AWS_CONFIG_FILE: join(home.path, 'config'),
    AWS_SHARED_CREDENTIALS_FILE: join(home.path, 'credentials'),
    AWS_ACCESS_KEY_ID: '',
    AWS_SECRET_ACCESS_KEY: '',
    AWS_SESSION_TOKEN: '',
    AWS_PROFILE: '',
    AWS_REGION: '',
    AWS_DEFAULT_REGION: '',
    ...extra,
  });
  const envCreds = {
    AWS_ACCESS_KEY_ID: ci.accessKeyId,
    AWS_SECRET_ACCESS_KEY: ci.secretAccessKey,
    AWS_SESSION_TOKEN: ci.sessionToken,
    AWS_REGION: 'us-east-2',
    AWS_EC2_METADATA_DISABLED: 'true',
  };

  before(async () => {
    sts = await startSts([ci, vm]);
    imds = await startImds({ region: 'eu-west-1', principal: vm });
    scene = await startSshCluster('aws.example', `iam:\n  forward_url: ${sts.url}\n`, 'aws-bot');
    c = scene.c;
  });
  after(async () => {
    await scene?.stop();
    await sts?.close();
    await imds?.close();
    home.cleanup();
  });

  it('tctl tokens add --join-method iam --spec: rules at spec.allow, printed there by tctl get', async () => {
    const spec = clusterFile(
      c,
      'iam-allow.yaml',
      `allow:\n  - aws_account: "${ACCOUNT}"\n    aws_arn: "*:assumed-role/ci-role/*"\n`,
    );
    const out = await addJoinToken<{ token: string; join_method: string; notes?: string[] }>(c, 'aws-bot', 'iam', [
      '--spec',
      spec,
      '--value',
      'ci-iam',
    ]);
    assert.equal(out.token, 'ci-iam');
    assert.equal(out.join_method, 'iam');
    assert.equal(out.notes, undefined);
    const got = await c.tctlOk(['get', 'token/ci-iam']);
    assert.match(got, /join_method: iam\n/);
    assert.match(got, /\n {2}allow:\n {4}- aws_account: "123456789012"\n {6}aws_arn: "\*:assumed-role\/ci-role\/\*"\n/);
    const bad = await c.tctl(['tokens', 'add', '--type=bot', '--bot-name', 'aws-bot', '--join-method', 'iam']);
    // refused by the Auth Service (BAD_REQUEST), as a platform token without rules is for every method
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /spec\.allow: at least one allow rule is required/);
  });

  it("Teleport's token YAML for iam (tctl create) loads unchanged", async () => {
    const f = clusterFile(
      c,
      'teleport-iam.yaml',
      'kind: token\nversion: v2\nmetadata:\n  name: vm-iam\nspec:\n  roles: [Bot]\n  join_method: iam\n' +
        `  bot_name: aws-bot\n  allow:\n    - aws_account: "${ACCOUNT}"\n` +
        `      aws_arn: "arn:aws:sts::${ACCOUNT}:assumed-role/ec2-role/i-*"\n`,
    );
    const r = await c.tctl(['create', f]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /ignored|deprecated/);
  });

  it('one-shot, credentials from the environment: the identity logs in to sshd', async () => {
    const out = join(c.dir, 'oneshot-out');
    const r = await cli('tbot', ['start', ...joinFlags(c, 'iam', 'ci-iam'), '--destination-dir', out, '--oneshot'], {
      env: awsEnv(envCreds),
    });
    assert.equal(r.code, 0, r.stderr);
    await assertSshLogin(scene, out, 'iam-oneshot');
    const joined = c.audit().filter((e) => e.event === 'bot.join' && e.join_method === 'iam' && e.success);
    assert.equal(joined.at(-1)?.aws_arn, ci.arn);
    assert.equal(joined.at(-1)?.sts_host, 'sts.us-east-2.amazonaws.com');
    assert.deepEqual(sts.requests.at(-1), { host: 'sts.us-east-2.amazonaws.com', verified: true });
  });

  it('daemon on an EC2 instance (instance profile through IMDSv2): every identity is a new join; sshd login', async () => {
    const out = join(c.dir, 'daemon-out');
    const tbot = spawnCli(
      'tbot',
      daemonArgs(c, 'iam', 'vm-iam', {
        storage: ['--storage', join(c.dir, 'daemon-storage')],
        out,
        renewal: '5s',
      }),
      awsEnv({ AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url }),
    );
    try {
      await waitFor('the identity output', () => existsSync(join(out, 'key-cert.pub')), 30_000);
      await waitFor('a refresh by a new join', () => /refreshed identity/.test(tbot.out()), 30_000);
      await assertSshLogin(scene, out, 'iam-daemon', tbot.out().slice(-2000));
      const joins = c.audit().filter((e) => e.event === 'bot.join' && e.token_id === 'vm-iam' && e.success);
      assert.ok(joins.length >= 2, tbot.out());
      assert.ok(joins.every((e) => e.aws_arn === vm.arn && e.sts_host === 'sts.eu-west-1.amazonaws.com'));
      // the refresh continues the instance the first join made (one instance, not one per identity)
      assert.equal(new Set(joins.map((e) => e.bot_instance_id)).size, 1);
      assert.ok(imds.requests.some((p) => p.startsWith('/latest/meta-data/iam/security-credentials')));
    } finally {
      tbot.kill('SIGTERM');
      await exited(tbot);
    }
  });

  it('a role outside the rules: refused generically; the audit has why, tokens test --from-audit explains', async () => {
    const other = testPrincipal(ACCOUNT, 'admin-role', 'x');
    sts.principals.set(other.accessKeyId, other);
    const r = await cli('tbot', ['start', ...joinFlags(c, 'iam', 'ci-iam'), '--oneshot'], {
      env: awsEnv({
        ...envCreds,
        AWS_ACCESS_KEY_ID: other.accessKeyId,
        AWS_SECRET_ACCESS_KEY: other.secretAccessKey,
        AWS_SESSION_TOKEN: other.sessionToken,
      }),
    });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /matches none of the token's allow rules/);
    assert.doesNotMatch(r.stderr, /admin-role/);
    const refused = c
      .audit()
      .filter((e) => e.event === 'bot.join' && e.success === false)
      .at(-1)!;
    assert.match(String(refused.reason), /no allow rule matches/);
    assert.equal(refused.claims?.aws_arn, other.arn);
    const t = await c.tctl(['tokens', 'test', 'ci-iam', '--from-audit', String(refused.uid)]);
    assert.equal(t.code, 1, t.stderr);
    assert.match(t.stdout, /aws_arn/);
    assert.match(t.stdout, /admin-role/);
  });

  it('mwi start refuses a bad iam section naming the field', async () => {
    const dir = tempDir('iam-bad');
    try {
      writeFileSync(join(dir.path, 'mwi.yaml'), 'iam:\n  forward_url: http://sts.example.com\n');
      const r = await cli('mwi', ['start', '--config', join(dir.path, 'mwi.yaml'), '--data-dir', join(dir.path, 'd')]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /iam\.forward_url: expected https:\/\/HOST\[:PORT\] \(http:\/\/ only for loopback\)/);
    } finally {
      dir.cleanup();
    }
  });
});
