import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { clusterFile, startCluster, type TestCluster } from '../helpers/cluster.js';
import { cli, exited, run, spawnCli, waitFor, type CliProcess } from '../helpers/procs.js';
import { freePort, SSHD } from '../helpers/sshd.js';

const canConnect = (port: number) =>
  new Promise<boolean>((resolve) => {
    const c = createConnection({ port, host: '127.0.0.1' });
    c.once('connect', () => (c.destroy(), resolve(true)));
    c.once('error', () => resolve(false));
  });

/** The serial of an OpenSSH certificate file (ssh-keygen -L). */
async function serialOf(file: string): Promise<string> {
  const l = await run('ssh-keygen', ['-L', '-f', file]);
  assert.equal(l.code, 0, l.stderr);
  return /Serial: (\d+)/.exec(l.stdout)![1]!;
}

/**
 * tbot's ssh_host output with a real sshd (Debian's openssh-server) and a real ssh client: sshd
 * presents the written host key and certificate and trusts the written user CA; the client trusts
 * hosts only through a `@cert-authority` known_hosts line from `tctl auth export --type host`.
 */
describe('ssh_host output: a real sshd presents the certificate tbot writes; ssh trusts it by CA only', () => {
  const me = userInfo().username;
  let c: TestCluster;
  let tbot: CliProcess;
  let sshd: ChildProcess | undefined;
  let sshdLog = '';
  let port: number;
  let hostOut: string;
  let idOut: string;
  let knownHosts: string;

  const tbotYaml = (token: string, outputs: string, extra: string) =>
    `version: v2\nauth_server: ${c.addr}\nonboarding:\n  join_method: token\n  token: ${token}\n` +
    `  ca_pins: ["${c.caPin}"]\n${extra}outputs:\n${outputs}`;
  const hostOutput = (dir: string, principals: string[]) =>
    `  - type: ssh_host\n    principals: ${JSON.stringify(principals)}\n` +
    `    destination:\n      type: directory\n      path: ${dir}\n`;
  const addBot = async (name: string) =>
    (JSON.parse(await c.tctlOk(['bots', 'add', name, '--roles', 'host-role', '--format', 'json'])) as { token: string })
      .token;
  /** ssh to the sshd with the identity output's key, trusting hosts through `kh` only; never prompts. */
  const ssh = (kh: string, command: string) =>
    run('ssh', ['-v', '-p', String(port), '-i', join(idOut, 'key'),
      '-o', `CertificateFile=${join(idOut, 'key-cert.pub')}`, '-o', 'IdentitiesOnly=yes',
      '-o', `UserKnownHostsFile=${kh}`, '-o', 'GlobalKnownHostsFile=/dev/null',
      '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=10', `${me}@127.0.0.1`, command],
      { timeoutMs: 30_000 }); // prettier-ignore

  before(async () => {
    c = await startCluster('ssh-host.example');
    const role =
      `kind: role\nversion: v7\nmetadata: { name: host-role }\nspec:\n  allow:\n    logins: [${me}]\n` +
      `    rules:\n      - resources: [host_cert]\n        verbs: [create]\n` +
      `        where: 'is_subset(host_cert.principals, "127.0.0.1", "localhost")'\n`;
    await c.tctlOk(['create', '-f', clusterFile(c, 'host-role.yaml', role)]);
    hostOut = join(c.dir, 'host-out');
    idOut = join(c.dir, 'id-out');
    const token = await addBot('hoster');
    const identity = `  - type: identity\n    destination:\n      type: directory\n      path: ${idOut}\n`;
    const file = clusterFile(c, 'tbot.yaml', tbotYaml(token, hostOutput(hostOut, ['127.0.0.1', 'localhost']) +
      identity, `storage:\n  type: directory\n  path: ${join(c.dir, 'storage')}\ncredential_ttl: 20s\n` +
      'renewal_interval: 6s\n')); // prettier-ignore
    tbot = spawnCli('tbot', ['start', '-c', file]);
    await waitFor('tbot to write both outputs', async () => {
      if (tbot.exitCode !== null) throw new Error(`tbot exited: ${tbot.out()}`);
      return existsSync(join(hostOut, 'ssh_host-cert.pub')) && existsSync(join(idOut, 'key-cert.pub'));
    });
    knownHosts = join(c.dir, 'known_hosts');
    writeFileSync(knownHosts, await c.tctlOk(['auth', 'export', '--type', 'host']));
    port = await freePort();
    const sshdDir = join(c.dir, 'sshd');
    mkdirSync(sshdDir, { recursive: true });
    if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true });
    // the recipe of docs/outputs.md: the three files, as written
    const config = [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${join(hostOut, 'ssh_host')}`,
      `HostCertificate ${join(hostOut, 'ssh_host-cert.pub')}`,
      `TrustedUserCAKeys ${join(hostOut, 'ssh_host-user-ca.pub')}`,
      'AuthorizedKeysFile none',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      'StrictModes no',
      `PidFile ${join(sshdDir, 'sshd.pid')}`,
      'LogLevel VERBOSE',
      '',
    ];
    writeFileSync(join(sshdDir, 'sshd_config'), config.join('\n'));
    const proc = spawn(SSHD, ['-D', '-e', '-f', join(sshdDir, 'sshd_config')], { stdio: ['ignore', 'pipe', 'pipe'] });
    sshd = proc;
    proc.stdout.on('data', (d: Buffer) => (sshdLog += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (sshdLog += d.toString()));
    await waitFor('sshd to listen', async () => {
      if (proc.exitCode !== null) throw new Error(`sshd exited: ${sshdLog}`);
      return canConnect(port);
    });
  });
  after(async () => {
    if (sshd && sshd.exitCode === null) {
      sshd.kill('SIGTERM');
      await exited(sshd);
    }
    if (tbot && tbot.exitCode === null) {
      tbot.kill('SIGTERM');
      await exited(tbot);
    }
    await c?.stop();
  });

  it('ssh with only a @cert-authority line and StrictHostKeyChecking yes connects, no prompt', async () => {
    assert.match(readFileSync(knownHosts, 'utf8'), /^@cert-authority \* ssh-ed25519 /);
    const r = await ssh(knownHosts, 'echo host-ok');
    assert.equal(r.code, 0, `${r.stderr}\nsshd: ${sshdLog.slice(-1500)}\ntbot: ${tbot.out().slice(-1500)}`);
    assert.equal(r.stdout.trim(), 'host-ok');
    // the host was vouched for by its certificate, signed for this bot instance
    assert.match(r.stderr, /Server host certificate: ecdsa-sha2-nistp256-cert-v01@openssh.com .*ID "bot-hoster\//);
    assert.match(r.stderr, /Host '\[127\.0\.0\.1\]:\d+' is known and matches the ECDSA-CERT host certificate/);
    // control: without the CA line the same client refuses the host (no prompt in batch mode)
    const strangers = join(c.dir, 'known_hosts_other');
    writeFileSync(strangers, `@cert-authority * ${readFileSync(join(idOut, 'key.pub'), 'utf8')}`);
    const refused = await ssh(strangers, 'echo no');
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /Host key verification failed/);
  });

  it('the files: key 0600, certificate for the requested principals, user CA lines for TrustedUserCAKeys', async () => {
    const l = await run('ssh-keygen', ['-L', '-f', join(hostOut, 'ssh_host-cert.pub')]);
    assert.match(l.stdout, /host certificate/);
    assert.match(l.stdout, /Principals: \n\s+127\.0\.0\.1\n\s+localhost\n/);
    const userCa = readFileSync(join(hostOut, 'ssh_host-user-ca.pub'), 'utf8');
    assert.equal(userCa, (await c.tctlOk(['auth', 'export', '--type', 'openssh'])).replace(/^cert-authority /, ''));
  });

  it('renewal replaces the certificate; sshd presents the new one to the next connection', async () => {
    const cert = join(hostOut, 'ssh_host-cert.pub');
    const first = await serialOf(cert);
    const next = await waitFor('a renewed host certificate', async () => {
      const s = await serialOf(cert);
      return s !== first ? s : undefined;
    }, 30_000); // prettier-ignore
    const r = await ssh(knownHosts, 'echo renewed');
    assert.equal(r.code, 0, `${r.stderr}\nsshd: ${sshdLog.slice(-1500)}`);
    assert.match(r.stderr, new RegExp(`Server host certificate: .* serial ${next} `));
  });

  it('a principal the role does not allow: refused by the Auth Service, nothing written, the reason named', async () => {
    const out = join(c.dir, 'evil-out');
    const token = await addBot('evil');
    const file = clusterFile(c, 'evil.yaml', tbotYaml(token, hostOutput(out, ['evil.example.com']), 'oneshot: true\n'));
    const r = await cli('tbot', ['start', '-c', file]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /do not allow host principals evil\.example\.com/);
    assert.ok(!existsSync(join(out, 'ssh_host-cert.pub')));
    const refusal = c.audit().find((e) => e.event === 'bot.certs' && e.bot_name === 'evil' && !e.success);
    assert.equal(refusal?.output, 'ssh_host');
  });
});
