// The ec2 join with aws_role end to end: the real mwi (its AWS credentials from the environment,
// STS and EC2 reached through ec2.forward_url: a local https stand-in that checks SigV4), tbot
// reading a signed document from a local IMDSv2, and a real sshd.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAwsApi, type TestAwsApi } from '../helpers/aws-ec2-api.js';
import { iidJson, signIid, testRegionCa } from '../helpers/aws-iid.js';
import { clusterFile, joinFlags, type TestCluster } from '../helpers/cluster.js';
import { startImds, type TestImds } from '../helpers/imds.js';
import { cli, tempDir } from '../helpers/procs.js';
import { assertSshLogin, startSshCluster, type SshCluster } from '../helpers/ssh-cluster.js';

const ACCOUNT = '123456789012';
const ROLE = `arn:aws:iam::${ACCOUNT}:role/mwi-describe-instances`;

describe('ec2 with aws_role: the Auth Service asks EC2 whether the instance is running', () => {
  let scene: SshCluster;
  let c: TestCluster;
  let imds: TestImds;
  let aws: TestAwsApi;
  const dir = tempDir('ec2-describe');
  const saved: Record<string, string | undefined> = {};
  let docFor: (instanceId: string) => Promise<string>;

  before(async () => {
    aws = await startAwsApi(join(dir.path));
    aws.roles.add(ROLE);
    // mwi start inherits the environment: its credentials for the AWS default chain
    for (const [k, v] of Object.entries(aws.authEnv())) {
      saved[k] = process.env[k];
      process.env[k] = v;
    }
    const ca = await testRegionCa();
    writeFileSync(join(dir.path, 'us-west-2.pem'), ca.pem);
    const pendingTime = new Date(Date.now() - 30_000).toISOString().replace(/\.\d+Z$/, 'Z');
    docFor = (instanceId) => signIid(iidJson({ instanceId, pendingTime }), ca);
    imds = await startImds();
    const mwiYaml =
      `ec2:\n  region_certificates:\n    us-west-2: ${join(dir.path, 'us-west-2.pem')}\n` +
      `  forward_url: ${aws.url}\n  forward_ca_path: ${aws.caPath}\n`;
    scene = await startSshCluster('ec2-describe.example', mwiYaml, 'vm');
    c = scene.c;
    const f = clusterFile(
      c,
      'ec2-role.yaml',
      'kind: token\nversion: v2\nmetadata:\n  name: vm-ec2-role\nspec:\n  roles: [Bot]\n  join_method: ec2\n' +
        `  bot_name: vm\n  allow:\n    - aws_account: "${ACCOUNT}"\n      aws_role: "${ROLE}"\n`,
    );
    await c.tctlOk(['create', f]);
  });
  after(async () => {
    await scene?.stop();
    await imds?.close();
    await aws?.close();
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
    dir.cleanup();
  });

  const oneshot = (out: string) =>
    cli('tbot', ['start', ...joinFlags(c, 'ec2', 'vm-ec2-role'), '--destination-dir', out, '--oneshot'], {
      env: { AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url },
    });

  it('a running instance joins and logs in to sshd; a second one reuses the assumed role', async () => {
    aws.instances.set('i-0aaaa00001111cccc', { ownerId: ACCOUNT, region: 'us-west-2', state: 'running' });
    aws.instances.set('i-0aaaa00002222cccc', { ownerId: ACCOUNT, region: 'us-west-2', state: 'running' });
    imds.rsa2048 = await docFor('i-0aaaa00001111cccc');
    const r = await oneshot(join(c.dir, 'out-1'));
    assert.equal(r.code, 0, r.stderr);
    await assertSshLogin(scene, join(c.dir, 'out-1'), 'ec2-describe');
    imds.rsa2048 = await docFor('i-0aaaa00002222cccc');
    const r2 = await oneshot(join(c.dir, 'out-2'));
    assert.equal(r2.code, 0, r2.stderr);
    assert.deepEqual(aws.calls, [
      `AssumeRole ${ROLE}`,
      'DescribeInstances i-0aaaa00001111cccc us-west-2',
      'DescribeInstances i-0aaaa00002222cccc us-west-2',
    ]);
    assert.deepEqual(aws.refused, []);
  });

  it('a stopped instance, or one EC2 does not know, is refused; the audit log says why', async () => {
    aws.instances.set('i-0bbbb00001111dddd', { ownerId: ACCOUNT, region: 'us-west-2', state: 'stopped' });
    for (const [id, reason] of [
      ['i-0bbbb00001111dddd', /EC2 instance i-0bbbb00001111dddd is "stopped", not running/],
      ['i-0bbbb00002222dddd', /EC2 DescribeInstances in us-west-2 as .* does not list instance i-0bbbb00002222dddd/],
    ] as const) {
      imds.rsa2048 = await docFor(id);
      const r = await oneshot(join(c.dir, `refused-${id}`));
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /the join was refused/);
      const refused = c
        .audit()
        .filter((e) => e.event === 'bot.join' && e.success === false)
        .at(-1);
      assert.match(String(refused?.reason), reason);
    }
    // the refused join's signed claims, explained: the rule matches, the running check is the join's
    const refused = c
      .audit()
      .filter((e) => e.event === 'bot.join' && e.success === false)
      .at(-1)!;
    const t = await c.tctl(['tokens', 'test', 'vm-ec2-role', '--from-audit', String(refused.uid)]);
    assert.match(t.stdout, /rule 0: MATCHES/, t.stdout + t.stderr);
    assert.match(t.stdout, /instance running.*not checked here: a join assumes "arn:aws:iam::123456789012:role\//);
  });

  it('tctl tokens test --id-token says the running check is made at the join', async () => {
    const file = join(c.dir, 'rsa2048.txt');
    writeFileSync(file, await docFor('i-0cccc00001111eeee'), { mode: 0o600 });
    const r = await c.tctl(['tokens', 'test', 'vm-ec2-role', '--id-token', file]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /instance running.*not checked here: a join assumes "arn:aws:iam::123456789012:role\//);
  });
});
