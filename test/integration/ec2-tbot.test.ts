// The ec2 join end to end: the real mwi (a test CA as us-west-2's AWS certificate), tctl, tbot
// reading a document signed in AWS's shape from a local IMDSv2, and a real sshd.
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { iidJson, signIid, testRegionCa } from '../helpers/aws-iid.js';
import { addJoinToken, clusterFile, daemonArgs, joinFlags, type TestCluster } from '../helpers/cluster.js';
import { startImds, type TestImds } from '../helpers/imds.js';
import { cli, exited, spawnCli, tempDir, waitFor } from '../helpers/procs.js';
import { assertSshLogin, startSshCluster, type SshCluster } from '../helpers/ssh-cluster.js';

const ACCOUNT = '123456789012';

describe('ec2: tbot joins with the instance identity document, then renews', () => {
  let scene: SshCluster;
  let c: TestCluster;
  let imds: TestImds;
  const certs = tempDir('ec2-ca');
  const env = () => ({ AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url });

  /** A document AWS would serve on instance `instanceId`, started 30 s ago. */
  let docFor: (instanceId: string) => Promise<string>;

  before(async () => {
    const ca = await testRegionCa();
    writeFileSync(join(certs.path, 'us-west-2.pem'), ca.pem);
    const pendingTime = new Date(Date.now() - 30_000).toISOString().replace(/\.\d+Z$/, 'Z');
    docFor = (instanceId) => signIid(iidJson({ instanceId, pendingTime }), ca);
    imds = await startImds();
    const mwiYaml = `ec2:\n  region_certificates:\n    us-west-2: ${join(certs.path, 'us-west-2.pem')}\n`;
    scene = await startSshCluster('ec2.example', mwiYaml, 'vm');
    c = scene.c;
  });
  after(async () => {
    await scene?.stop();
    await imds?.close();
    certs.cleanup();
  });

  it("tctl tokens add --join-method ec2, and Teleport's token YAML (aws_iid_ttl, aws_role)", async () => {
    const spec = clusterFile(
      c,
      'ec2-allow.yaml',
      `allow:\n  - aws_account: "${ACCOUNT}"\n    aws_regions: [us-west-2]\n`,
    );
    const out = await addJoinToken(c, 'vm', 'ec2', ['--spec', spec, '--value', 'vm-ec2']);
    assert.equal(out.join_method, 'ec2');
    const f = clusterFile(
      c,
      'teleport-ec2.yaml',
      'kind: token\nversion: v2\nmetadata:\n  name: fleet-ec2\nspec:\n  roles: [Bot]\n  join_method: ec2\n' +
        `  bot_name: vm\n  aws_iid_ttl: 5m0s\n  allow:\n    - aws_account: "${ACCOUNT}"\n` +
        `      aws_role: "arn:aws:iam::${ACCOUNT}:role/teleport-describe-instances"\n`,
    );
    const r = await c.tctl(['create', f]);
    assert.equal(r.code, 0, r.stderr);
    // aws_role is used now (ec2-describe-tbot.test.ts): no note that it is not
    assert.doesNotMatch(r.stderr, /aws_role/);
    const got = await c.tctlOk(['get', 'token/fleet-ec2']);
    assert.match(got, /\n {2}aws_iid_ttl: 5m0s\n/);
    assert.match(
      got,
      /\n {2}allow:\n {4}- aws_account: "123456789012"\n {6}aws_role: arn:aws:iam::123456789012:role\//,
    );
  });

  it('one-shot: joins and logs in to sshd; the same EC2 instance again is refused until its bot instance is locked', async () => {
    imds.rsa2048 = await docFor('i-0aaaabbbbccccdddd');
    const out = join(c.dir, 'oneshot-out');
    const oneshot = () =>
      cli('tbot', ['start', ...joinFlags(c, 'ec2', 'vm-ec2'), '--destination-dir', out, '--oneshot'], { env: env() });
    const r = await oneshot();
    assert.equal(r.code, 0, r.stderr);
    await assertSshLogin(scene, out, 'ec2-oneshot');
    const first = c
      .audit()
      .filter((e) => e.event === 'bot.join' && e.join_method === 'ec2' && e.success)
      .at(-1)!;
    assert.equal(first.aws_instance_id, 'i-0aaaabbbbccccdddd');
    assert.deepEqual(imds.requests.at(-1), '/latest/dynamic/instance-identity/rsa2048');
    // trust on first use: its bot instance is still valid, so the document cannot join again
    const again = await oneshot();
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /this EC2 instance has already joined/);
    // the operator releases it by locking the bot instance it joined as
    await c.tctlOk(['locks', 'add', '--bot-instance', String(first.bot_instance_id), '--message', 'reimaged']);
    await new Promise((r) => setTimeout(r, 300)); // the lock reaches the cache
    const released = await oneshot();
    assert.equal(released.code, 0, released.stderr);
  });

  it('daemon: joins once, renews over mTLS (no new document), logs in; a copy of the document is refused meanwhile', async () => {
    imds.rsa2048 = await docFor('i-0eeeeffff00001111');
    const out = join(c.dir, 'daemon-out');
    const tbot = spawnCli(
      'tbot',
      daemonArgs(c, 'ec2', 'vm-ec2', {
        storage: ['--storage', join(c.dir, 'daemon-storage')],
        out,
        renewal: '5s',
      }),
      env(),
    );
    try {
      await waitFor('the identity output', () => existsSync(join(out, 'key-cert.pub')), 30_000);
      const reads = imds.requests.length;
      await waitFor('a renewal', () => /renewed identity/.test(tbot.out()), 30_000);
      assert.equal(imds.requests.length, reads, 'a renewal reads no document');
      await assertSshLogin(scene, out, 'ec2-daemon', tbot.out().slice(-2000));
      // the same document from another machine (or a second tbot on this one): refused
      const copy = await cli('tbot', ['start', ...joinFlags(c, 'ec2', 'vm-ec2'), '--oneshot'], { env: env() });
      assert.notEqual(copy.code, 0);
      assert.match(copy.stderr, /this EC2 instance has already joined, and its bot instance is still valid/);
      const refused = c
        .audit()
        .filter((e) => e.event === 'bot.join' && e.success === false)
        .at(-1);
      assert.match(String(refused?.reason), /EC2 instance 123456789012-i-0eeeeffff00001111 already joined/);
    } finally {
      tbot.kill('SIGTERM');
      await exited(tbot);
    }
  });

  it('tctl tokens test --id-token: a document saved from an instance, checked (signature, age, rules)', async () => {
    const file = join(c.dir, 'rsa2048.txt');
    writeFileSync(file, await docFor('i-0123401234012340a'), { mode: 0o600 });
    const ok = await c.tctl(['tokens', 'test', 'vm-ec2', '--id-token', file]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /ok +signature +by AWS's RSA-2048 certificate of us-west-2/);
    assert.match(ok.stdout, /rule 0: MATCHES/);
    const other = clusterFile(
      c,
      'ec2-eu.yaml',
      'kind: token\nversion: v2\nmetadata: { name: eu-ec2 }\nspec:\n  join_method: ec2\n  bot_name: vm\n' +
        `  allow: [{ aws_account: "${ACCOUNT}", aws_regions: [eu-west-1] }]\n`,
    );
    await c.tctlOk(['create', other]);
    const no = await c.tctl(['tokens', 'test', 'eu-ec2', '--id-token', file]);
    assert.equal(no.code, 1, no.stdout + no.stderr);
    assert.match(no.stdout, /aws_regions/);
    assert.equal(
      c.audit().filter((e) => e.event === 'bot.join' && e.aws_instance_id === 'i-0123401234012340a').length,
      0,
    );
  });

  it('mwi start refuses an unreadable region certificate, naming the region', async () => {
    const dir = tempDir('ec2-bad');
    try {
      writeFileSync(join(dir.path, 'mwi.yaml'), 'ec2:\n  region_certificates:\n    us-east-1: /nonexistent.pem\n');
      const r = await cli('mwi', ['start', '--config', join(dir.path, 'mwi.yaml'), '--data-dir', join(dir.path, 'd')]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /ec2\.region_certificates\.us-east-1: cannot read \/nonexistent\.pem/);
    } finally {
      dir.cleanup();
    }
  });
});
