import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  realpathSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { VERSION } from '../../src/version.js';
import { roleYaml } from '../helpers/cluster.js';
import { exited, run, tempDir, waitFor, type RunResult } from '../helpers/procs.js';
import { sshRun, startSshd, type Sshd } from '../helpers/sshd.js';

// compiled to dist/test/integration: the repository is three levels up
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const PROGRAMS = ['tbot', 'tctl', 'mwi'] as const;

/** Runs a program as `env -i PATH=/nonexistent [VAR=value...] PROGRAM ARGS`: no Node.js to be found. */
function bare(program: string, args: string[], vars: Record<string, string> = {}): Promise<RunResult> {
  const env = Object.entries({ PATH: '/nonexistent', ...vars }).map(([k, v]) => `${k}=${v}`);
  return run('env', ['-i', ...env, program, ...args], { timeoutMs: 60_000 });
}

const READY = /listening on (\S+)(?: \(\d+ workers\))?\nCA pin: (sha256:[0-9a-f]{64})/;

interface BinaryAuth {
  proc: ChildProcess;
  out: () => string;
  addr: string;
  caPin: string;
}

/** `mwi start` from the binary, with nothing from the environment but a private TMPDIR. */
async function startAuth(mwi: string, dataDir: string, tmp: string, args: string[] = []): Promise<BinaryAuth> {
  const proc = spawn(
    'env',
    [
      '-i',
      'PATH=/nonexistent',
      `TMPDIR=${tmp}`,
      mwi,
      'start',
      '--data-dir',
      dataDir,
      '--listen',
      '127.0.0.1:0',
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let text = '';
  proc.stdout.on('data', (d: Buffer) => (text += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (text += d.toString()));
  const m = await waitFor('mwi start (binary)', () => {
    if (proc.exitCode !== null) throw new Error(`mwi exited (${proc.exitCode}): ${text}`);
    return READY.exec(text);
  });
  return { proc, out: () => text, addr: m[1]!, caPin: m[2]! };
}

async function stopAuth(a: BinaryAuth | undefined): Promise<number | null> {
  if (!a || a.proc.exitCode !== null || a.proc.signalCode !== null) return a?.proc.exitCode ?? null;
  a.proc.kill('SIGTERM');
  return exited(a.proc, 20_000);
}

describe('single executables: npm run build:binary (issue #13)', () => {
  let t: { path: string; cleanup: () => void };
  let bin: string;
  let auth: BinaryAuth | undefined;
  let sshd: Sshd | undefined;
  /** The Auth Service's TMPDIR: where the mwi binary extracts its native module. */
  let authTmp: string;
  let dataDir: string;
  const tctl = async (args: string[]) => {
    const r = await bare(join(bin, 'tctl'), ['--data-dir', dataDir, ...args]);
    if (r.code !== 0) throw new Error(`tctl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    t = tempDir('binary');
    // built from the sources into the temp dir, far from the repository and its node_modules: the
    // binaries need nothing beside them (the .deb tests below package these same files)
    bin = join(t.path, 'bin');
    const build = await run(process.execPath, [join(ROOT, 'scripts', 'build-binary.mjs'), '--out', bin], {
      timeoutMs: 300_000,
    });
    assert.equal(build.code, 0, `build:binary failed: ${build.stderr}${build.stdout}`);
    authTmp = join(t.path, 'auth-tmp');
    mkdirSync(authTmp);
    dataDir = join(t.path, 'auth');
  });

  after(async () => {
    await stopAuth(auth);
    await sshd?.stop();
    t?.cleanup();
  });

  it('each binary runs `version` with env -i PATH=/nonexistent', async () => {
    for (const p of PROGRAMS) {
      const r = await bare(join(bin, p), ['version']);
      assert.equal(r.code, 0, `${p}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^${p} v${VERSION.replace(/\./g, '\\.')}\\b`));
      // Node's warning that single executables are experimental is turned off at build time
      assert.equal(r.stderr, '', p);
    }
  });

  it('and with /usr/bin/node hidden (a mount namespace), when unshare(1) may make one', async (ctx) => {
    const probe = await run('unshare', ['-m', 'true']);
    if (probe.code !== 0) return ctx.skip(`unshare -m is not allowed here: ${probe.stderr.trim()}`);
    const node = realpathSync(process.execPath);
    for (const p of PROGRAMS) {
      const script = `mount --bind /dev/null "$1" && exec env -i PATH=/nonexistent "$2" version`;
      const r = await run('unshare', ['-m', 'sh', '-c', script, 'sh', node, join(bin, p)]);
      assert.equal(r.code, 0, `${p}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^${p} v`));
    }
  });

  it('the mwi binary serves on SQLite, its native module extracted to a private directory', async () => {
    auth = await startAuth(join(bin, 'mwi'), dataDir, authTmp, ['--cluster-name', 'binary-test']);
    const dirs = readdirSync(authTmp);
    assert.equal(dirs.length, 1, dirs.join(' '));
    assert.match(dirs[0]!, /^mwi-sqlite-/);
    assert.equal(statSync(join(authTmp, dirs[0]!)).mode & 0o777, 0o700);
    assert.ok(existsSync(join(dataDir, 'mwi.db')));
  });

  it('the tctl binary creates a role and a bot; the checkpointer thread copies the commits into mwi.db', async () => {
    const role = join(t.path, 'role.yaml');
    writeFileSync(role, roleYaml('binary-role', userInfo().username));
    assert.match(await tctl(['create', role]), /role "binary-role" has been created/);
    const token = JSON.parse(await tctl(['bots', 'add', 'robot', '--roles', 'binary-role', '--format', 'json'])) as {
      token: string;
    };
    writeFileSync(join(t.path, 'token'), token.token, { mode: 0o600 });
    // the main file alone (copied without its -wal) has the commits only once a checkpoint ran;
    // without the checkpointer thread SQLite would wait for 1000 pages of WAL
    await waitFor(
      'a WAL checkpoint (the bot in mwi.db itself)',
      () => {
        const copy = join(t.path, 'main-only.db');
        copyFileSync(join(dataDir, 'mwi.db'), copy);
        const db = new Database(copy, { readonly: true });
        try {
          return db.prepare("SELECT 1 FROM kv WHERE key = '/bots/robot'").get() !== undefined;
        } catch {
          return false; // (a copy taken mid-checkpoint may be inconsistent: the next one)
        } finally {
          db.close();
        }
      },
      10_000,
      200,
    );
  });

  it('the tbot binary (env -i) joins with --oneshot; a real ssh logs in to sshd with its outputs', async () => {
    sshd = await startSshd({ tctlOk: tctl }, join(t.path, 'sshd'));
    const out = join(t.path, 'out');
    const r = await bare(join(bin, 'tbot'), [
      'start',
      '--oneshot',
      '--auth-server',
      auth!.addr,
      '--ca-pin',
      auth!.caPin,
      '--token',
      join(t.path, 'token'),
      '--data-dir',
      join(t.path, 'bot'),
      '--destination-dir',
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /one-shot run complete/);
    const login = await sshRun(out, sshd.port, userInfo().username, 'echo hello-from-the-binary');
    assert.equal(login.code, 0, `ssh failed: ${login.stderr}\nsshd: ${sshd.log().slice(-2000)}`);
    assert.equal(login.stdout.trim(), 'hello-from-the-binary');
  });

  it('the mwi binary stops cleanly on SIGTERM and removes its extracted native module', async () => {
    assert.equal(await stopAuth(auth), 0, auth!.out());
    assert.deepEqual(readdirSync(authTmp), []);
  });

  it('mwi start --workers 2 works in the binary (each worker is the binary again)', async () => {
    const dir = join(t.path, 'workers');
    const workers = await startAuth(join(bin, 'mwi'), join(dir, 'auth'), authTmp, ['--workers', '2']);
    try {
      assert.match(workers.out(), /listening on \S+ \(2 workers\)/);
      const r = await bare(join(bin, 'tctl'), ['--data-dir', join(dir, 'auth'), 'status']);
      assert.equal(r.code, 0, `${r.stderr}\n${workers.out()}`);
      // the primary and each worker: one extracted module per process that opened the database
      await waitFor('both workers', () => /started[\s\S]*started/.test(workers.out()));
    } finally {
      assert.equal(await stopAuth(workers), 0, workers.out());
    }
    assert.deepEqual(readdirSync(authTmp), []);
  });

  it('install systemd run from PATH: ExecStart is the binary itself, not node and a script', async () => {
    const path = join(t.path, 'path');
    mkdirSync(path);
    for (const p of ['tbot', 'mwi']) symlinkSync(join(bin, p), join(path, p));
    const tbotYaml = join(t.path, 'tbot.yaml');
    writeFileSync(
      tbotYaml,
      'version: v2\nauth_server: 127.0.0.1:3025\n' +
        `onboarding: {join_method: token, token: x, ca_pins: ["sha256:${'0'.repeat(64)}"]}\n` +
        `storage: {type: directory, path: ${join(t.path, 'bot')}}\n`,
    );
    const mwiYaml = join(t.path, 'mwi.yaml');
    writeFileSync(mwiYaml, `data_dir: ${dataDir}\n`);
    // started by its bare name, as a shell finds it on PATH
    const units = {
      tbot: await run('env', ['-i', `PATH=${path}`, 'tbot', 'install', 'systemd', '-c', tbotYaml]),
      mwi: await run('env', ['-i', `PATH=${path}`, 'mwi', 'install', 'systemd', '-c', mwiYaml]),
    };
    for (const [p, r] of Object.entries(units)) {
      assert.equal(r.code, 0, r.stderr);
      const yaml = p === 'tbot' ? tbotYaml : mwiYaml;
      assert.equal(/^ExecStart=(.*)$/m.exec(r.stdout)?.[1], `${realpathSync(join(bin, p))} start -c ${yaml}`);
    }
  });
});
