import assert from 'node:assert/strict';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { exited, spawnCli, waitFor } from '../helpers/procs.js';
import { sshRun, startSshd, type Sshd } from '../helpers/sshd.js';
import { existsSync } from 'node:fs';

/** End to end: a token-joined tbot's SSH certificate logs in to a real sshd, and a lock ends that. */
describe('ssh login with bot credentials (real sshd)', () => {
  let cluster: TestCluster;
  let sshd: Sshd;
  let out: string;
  let tbot: ReturnType<typeof spawnCli>;
  const me = userInfo().username;

  before(async () => {
    cluster = await startCluster();
    sshd = await startSshd(cluster, join(cluster.dir, 'sshd'));
    const token = await cluster.addBot('robot', [me]);
    out = join(cluster.dir, 'out');
    tbot = spawnCli('tbot', [
      'start',
      ...tbotFlags(cluster, token, join(cluster.dir, 'bot'), out),
      '--certificate-ttl',
      '15s',
      '--renewal-interval',
      '5s',
    ]);
    await waitFor('identity output', () => existsSync(join(out, 'key-cert.pub')));
  });

  after(async () => {
    if (tbot.exitCode === null) tbot.kill('SIGKILL');
    await sshd?.stop();
    await cluster?.stop();
  });

  it('logs in as a login the roles allow and runs a command', async () => {
    const r = await sshRun(out, sshd.port, me, 'echo hello-from-sshd');
    assert.equal(r.code, 0, `ssh failed: ${r.stderr}\nsshd: ${sshd.log().slice(-2000)}`);
    assert.equal(r.stdout.trim(), 'hello-from-sshd');
  });

  it('refuses a login the roles do not allow', async () => {
    const r = await sshRun(out, sshd.port, 'nobody', 'true');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Permission denied/);
  });

  it('keeps working across renewals', async () => {
    await waitFor('a renewal', () => /renewed identity/.test(tbot.out()), 20_000);
    const r = await sshRun(out, sshd.port, me, 'echo again');
    assert.equal(r.code, 0, r.stderr);
  });

  it('after tctl locks add --bot: the renewal is refused and the login fails once the cert expires', async () => {
    await cluster.tctlOk(['locks', 'add', '--bot', 'robot', '--message', 'compromised host']);
    tbot.kill('SIGHUP');
    const code = await exited(tbot, 20_000);
    assert.equal(code, 1);
    assert.match(tbot.out(), /locked: compromised host/);
    // the certificate already issued stays valid until it expires (15s TTL), then sshd refuses it
    await waitFor(
      'the last certificate to expire',
      async () => (await sshRun(out, sshd.port, me, 'true')).code !== 0,
      30_000,
      1000,
    );
    const r = await sshRun(out, sshd.port, me, 'true');
    assert.match(r.stderr, /Permission denied/);
    const refused = cluster.audit().filter((e) => e.event === 'bot.renew' && !e.success);
    assert.ok(
      refused.some((e) => /locked/.test(e.reason)),
      JSON.stringify(refused),
    );
  });
});
