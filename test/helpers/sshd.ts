import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import type { TestCluster } from './cluster.js';
import { exited, run, waitFor } from './procs.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection({ port, host: '127.0.0.1' });
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export interface Sshd {
  port: number;
  proc: ChildProcess;
  log: () => string;
  stop(): Promise<void>;
}

export const SSHD = ['/usr/sbin/sshd', '/usr/bin/sshd'].find((p) => existsSync(p)) ?? 'sshd';

/** How sshd trusts the user CA. */
export interface SshdTrust {
  /**
   * Absent: `TrustedUserCAKeys` with the cluster's user CA, no authorized_keys.
   * Set: no TrustedUserCAKeys; this file is every user's authorized_keys, to hold
   * `cert-authority KEY` lines (the form of tbot's `sshcacerts` output). sshd reads it at each
   * login, so a test may write it after sshd started.
   */
  authorizedKeysFile?: string;
}

/**
 * A real OpenSSH sshd on 127.0.0.1 that presents a host certificate signed by the cluster's host
 * CA and trusts the cluster's user CA in one of the two ways OpenSSH offers (see SshdTrust).
 */
export async function startSshd(
  cluster: Pick<TestCluster, 'tctlOk'>,
  dir: string,
  trust: SshdTrust = {},
): Promise<Sshd> {
  mkdirSync(dir, { recursive: true });
  if (process.getuid?.() === 0) mkdirSync('/run/sshd', { recursive: true });
  const hostKey = join(dir, 'ssh_host_ed25519_key');
  const keygen = await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  if (keygen.code !== 0) throw new Error(`ssh-keygen: ${keygen.stderr}`);
  await cluster.tctlOk([
    'auth',
    'sign',
    '--host',
    '127.0.0.1,localhost',
    '--public-key',
    `${hostKey}.pub`,
    '--out',
    `${hostKey}-cert.pub`,
  ]);
  writeFileSync(join(dir, 'user_ca.pub'), await cluster.tctlOk(['ca', 'export', '--type', 'ssh-user']));
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `HostCertificate ${hostKey}-cert.pub`,
      ...(trust.authorizedKeysFile
        ? [`AuthorizedKeysFile ${trust.authorizedKeysFile}`]
        : [`TrustedUserCAKeys ${join(dir, 'user_ca.pub')}`, 'AuthorizedKeysFile none']),
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'PermitRootLogin prohibit-password',
      'UsePAM no',
      'StrictModes no',
      `PidFile ${join(dir, 'sshd.pid')}`,
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );
  let log = '';
  const proc = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout.on('data', (d: Buffer) => (log += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (log += d.toString()));
  await waitFor('sshd to listen', async () => {
    if (proc.exitCode !== null) throw new Error(`sshd exited: ${log}`);
    return canConnect(port);
  });
  return {
    port,
    proc,
    log: () => log,
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await exited(proc);
      }
    },
  };
}

/** `ssh -F <out>/ssh_config` as a user would run it, non-interactive. */
export function sshRun(outDir: string, port: number, login: string, command: string) {
  return run(
    'ssh',
    [
      '-F',
      join(outDir, 'ssh_config'),
      '-p',
      String(port),
      '-o',
      'BatchMode=yes',
      '-o',
      'ConnectTimeout=10',
      `${login}@127.0.0.1`,
      command,
    ],
    {
      timeoutMs: 30_000,
    },
  );
}
