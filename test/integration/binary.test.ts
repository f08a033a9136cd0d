import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
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
const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
/** The SQLite module the mwi binary embeds (scripts/build-binary.mjs takes this one), and its hash. */
const ADDON = join(
  dirname(createRequire(import.meta.url).resolve('better-sqlite3/package.json')),
  'build/Release/better_sqlite3.node',
);
const ADDON_SHA = sha256(ADDON);
/** Where the mwi binary keeps it under TMPDIR: one directory per user and module. */
const SHARED = `mwi-sqlite-${process.getuid?.()}-${ADDON_SHA.slice(0, 16)}`;

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

/**
 * The binaries, built once for this file from the sources into a temp dir (the .deb tests package
 * these same files), far from the repository and its node_modules: they need nothing beside them.
 */
const shared = tempDir('binary-build');
let built: Promise<string> | undefined;
function binaries(): Promise<string> {
  built ??= (async () => {
    const bin = join(shared.path, 'bin');
    const build = await run(process.execPath, [join(ROOT, 'scripts', 'build-binary.mjs'), '--out', bin], {
      timeoutMs: 300_000,
    });
    assert.equal(build.code, 0, `build:binary failed: ${build.stderr}${build.stdout}`);
    return bin;
  })();
  return built;
}
after(() => shared.cleanup());

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
    bin = await binaries();
    authTmp = join(t.path, 'auth-tmp');
    mkdirSync(authTmp);
    dataDir = join(t.path, 'auth');
  });

  after(async () => {
    await stopAuth(auth);
    await sshd?.stop();
    t?.cleanup();
  });

  it('each binary runs `version` with env -i PATH=/nonexistent; SHA256SUMS checks them', async () => {
    const sums = await run('sha256sum', ['-c', 'SHA256SUMS'], { cwd: bin });
    assert.equal(sums.stdout, PROGRAMS.map((p) => `${p}: OK\n`).join(''), sums.stderr);
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

  it('a TMPDIR mounted noexec: the mwi binary exits 2 naming TMPDIR and what to do', async (ctx) => {
    const probe = await run('unshare', ['-m', 'true']);
    if (probe.code !== 0) return ctx.skip(`unshare -m is not allowed here: ${probe.stderr.trim()}`);
    const nx = join(t.path, 'noexec');
    mkdirSync(nx);
    const script =
      'd=$1 m=$2; shift 2; mount -t tmpfs -o noexec tmpfs "$d" && exec env -i PATH=/nonexistent TMPDIR="$d" "$m" "$@"';
    const args = ['start', '--data-dir', join(t.path, 'noexec-data'), '--listen', '127.0.0.1:0'];
    const r = await run('unshare', ['-m', 'sh', '-c', script, 'sh', nx, join(bin, 'mwi'), ...args]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /^ERROR: TMPDIR: cannot load SQLite's native module from .*noexec.*set TMPDIR to a directory/,
    );
  });

  it('the mwi binary serves on SQLite, its native module extracted to a private directory named by its hash', async () => {
    auth = await startAuth(join(bin, 'mwi'), dataDir, authTmp, ['--cluster-name', 'binary-test']);
    assert.deepEqual(readdirSync(authTmp), [SHARED]);
    assert.equal(statSync(join(authTmp, SHARED)).mode & 0o777, 0o700);
    assert.equal(sha256(join(authTmp, SHARED, 'better_sqlite3.node')), ADDON_SHA);
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

  it('the mwi binary stops cleanly on SIGTERM; its native module stays for the next start (one copy)', async () => {
    assert.equal(await stopAuth(auth), 0, auth!.out());
    assert.deepEqual(readdirSync(authTmp), [SHARED]);
  });

  it('mwi start --workers 2 works in the binary (each worker is the binary again)', async () => {
    const dir = join(t.path, 'workers');
    const workers = await startAuth(join(bin, 'mwi'), join(dir, 'auth'), authTmp, ['--workers', '2']);
    try {
      assert.match(workers.out(), /listening on \S+ \(2 workers\)/);
      const r = await bare(join(bin, 'tctl'), ['--data-dir', join(dir, 'auth'), 'status']);
      assert.equal(r.code, 0, `${r.stderr}\n${workers.out()}`);
      await waitFor('both workers', () => /started[\s\S]*started/.test(workers.out()));
    } finally {
      assert.equal(await stopAuth(workers), 0, workers.out());
    }
    // the primary and each worker, started together, load the one copy
    assert.deepEqual(readdirSync(authTmp), [SHARED]);
    assert.deepEqual(readdirSync(join(authTmp, SHARED)), ['better_sqlite3.node']);
  });

  it('SIGKILL leaves no second copy; a changed copy is replaced before it is loaded; a name it cannot trust is not used', async () => {
    const mwi = join(bin, 'mwi');
    const kill = async (a: BinaryAuth) => {
      a.proc.kill('SIGKILL');
      await exited(a.proc);
    };
    // killed (OOM, podman kill) with nothing removed: the next start finds the same copy
    const tmp = join(t.path, 'kill-tmp');
    mkdirSync(tmp);
    await kill(await startAuth(mwi, join(t.path, 'kill-1'), tmp));
    assert.deepEqual(readdirSync(tmp), [SHARED]);
    // a copy that is not the module (changed by someone of the same user, cut short): written again
    const file = join(tmp, SHARED, 'better_sqlite3.node');
    chmodSync(file, 0o600);
    writeFileSync(file, 'not SQLite');
    await kill(await startAuth(mwi, join(t.path, 'kill-2'), tmp));
    assert.deepEqual(readdirSync(tmp), [SHARED]);
    assert.deepEqual(readdirSync(join(tmp, SHARED)), ['better_sqlite3.node']);
    assert.equal(sha256(file), ADDON_SHA);

    // in a shared TMPDIR, another user may take the name first: a link to their directory, or
    // their own directory; mwi uses neither (a private directory instead, removed at exit)
    const bait = join(t.path, 'bait');
    mkdirSync(bait, { mode: 0o700 });
    writeFileSync(join(bait, 'better_sqlite3.node'), 'not SQLite', { mode: 0o500 });
    const linked = join(t.path, 'link-tmp');
    mkdirSync(linked);
    symlinkSync(bait, join(linked, SHARED));
    const cases = [linked];
    if (process.getuid?.() === 0) {
      const squatted = join(t.path, 'squat-tmp');
      mkdirSync(join(squatted, SHARED), { recursive: true, mode: 0o777 });
      chmodSync(join(squatted, SHARED), 0o777);
      writeFileSync(join(squatted, SHARED, 'better_sqlite3.node'), 'not SQLite');
      chownSync(join(squatted, SHARED), 65534, 65534);
      cases.push(squatted);
    }
    for (const [i, dir] of cases.entries()) {
      const a = await startAuth(mwi, join(t.path, `bait-${i}`), dir);
      assert.equal(await stopAuth(a), 0, a.out());
      assert.deepEqual(readdirSync(dir), [SHARED]);
    }
    assert.equal(readFileSync(join(bait, 'better_sqlite3.node'), 'utf8'), 'not SQLite');
    if (cases[1]) assert.equal(readFileSync(join(cases[1], SHARED, 'better_sqlite3.node'), 'utf8'), 'not SQLite');
  });

  it('install systemd run from PATH: ExecStart is the binary itself, not node and a script', async () => {
    const path = join(t.path, 'path');
    mkdirSync(path);
    for (const p of ['tbot', 'mwi']) symlinkSync(join(bin, p), join(path, p));
    const tbotYaml = join(t.path, 'tbot.yaml');
    writeFileSync(
      tbotYaml,
      'version: v2\nauth_server: 127.0.0.1:3025\n' +
        `onboarding: {join_method: token, token: x, ca_pins: ["sha256:${'ab'.repeat(32)}"]}\n` +
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

/** Why the .deb tests cannot run here, or undefined: they install into this very system. */
async function whyNoDeb(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'dpkg -i needs root';
  for (const tool of ['dpkg-deb', 'dpkg', 'dpkg-statoverride', 'adduser'])
    if ((await run('sh', ['-c', `command -v ${tool}`])).code !== 0) return `${tool} is not installed`;
  if ((await run('dpkg-query', ['-W', 'mwi'])).code === 0) return 'a package named mwi is installed on this system';
  // the purge at the end would remove them
  for (const p of ['/var/lib/mwi', '/var/lib/tbot', '/etc/mwi'])
    if (existsSync(p)) return `${p} exists on this system (the package's purge would remove it)`;
  return undefined;
}

/** dpkg, retried while another dpkg or apt holds its lock (other tests may install packages). */
async function dpkg(args: string[]): Promise<RunResult> {
  for (let i = 0; ; i++) {
    const r = await run('dpkg', args, { env: { DEBIAN_FRONTEND: 'noninteractive' }, timeoutMs: 180_000 });
    if (r.code === 0 || !/lock/i.test(r.stderr) || i >= 30) return r;
    await new Promise((res) => setTimeout(res, 2000));
  }
}

const userExists = async (u: string) => (await run('getent', ['passwd', u])).code === 0;
const groupExists = async (g: string) => (await run('getent', ['group', g])).code === 0;

describe('.deb: npm run build:deb, dpkg -i, the installed programs, dpkg --purge (issue #13)', async () => {
  const skip = await whyNoDeb();
  let t: { path: string; cleanup: () => void };
  let deb: string;
  /** The users and groups that were there before (left alone at the end). */
  const before0: Record<string, boolean> = {};
  let auth: BinaryAuth | undefined;

  before(async () => {
    if (skip) return;
    t = tempDir('deb');
    for (const u of ['mwi', 'tbot']) before0[u] = (await userExists(u)) || (await groupExists(u));
    const bin = await binaries();
    const r = await run(
      process.execPath,
      [join(ROOT, 'scripts', 'build-deb.mjs'), '--bin', bin, '--out', t.path, '--fast'],
      { timeoutMs: 300_000 },
    );
    assert.equal(r.code, 0, `build:deb failed: ${r.stderr}${r.stdout}`);
    deb = join(t.path, `mwi_${VERSION}_amd64.deb`);
  });

  // whatever failed: the system as it was (package purged, users and groups the test made removed)
  after(async () => {
    if (skip) return;
    await stopAuth(auth);
    if ((await run('dpkg-query', ['-W', 'mwi'])).code === 0) await dpkg(['--purge', 'mwi']);
    for (const u of ['mwi', 'tbot']) {
      if (before0[u]) continue;
      if (await userExists(u)) await run('userdel', [u]);
      if (await groupExists(u)) await run('groupdel', [u]);
    }
    t?.cleanup();
  });

  it(
    'build:deb makes mwi_<version>_amd64.deb: binaries, units with the package paths, conffiles',
    { skip },
    async () => {
      const field = async (f: string) => (await run('dpkg-deb', ['-f', deb, f])).stdout.trim();
      assert.equal(await field('Package'), 'mwi');
      assert.equal(await field('Version'), VERSION);
      assert.match(await field('Depends'), /\badduser\b.*\blibc6 \(>= 2\.\d+\)/);
      const list = (await run('dpkg-deb', ['-c', deb])).stdout;
      for (const f of [
        '-rwxr-xr-x root/root .* ./usr/bin/tbot',
        '-rwxr-xr-x root/root .* ./usr/bin/tctl',
        '-rwxr-xr-x root/root .* ./usr/bin/mwi',
        '-rw-r--r-- root/root .* ./lib/systemd/system/mwi.service',
        '-rw-r--r-- root/root .* ./lib/systemd/system/tbot.service',
        '-rw-r--r-- root/root .* ./etc/mwi/mwi.yaml',
        '-rw-r--r-- root/root .* ./etc/mwi/tbot.yaml',
      ])
        assert.match(list, new RegExp(`^${f}$`, 'm'));
      const conffiles = (await run('sh', ['-c', `dpkg-deb --ctrl-tarfile "$1" | tar -xO ./conffiles`, 'sh', deb]))
        .stdout;
      assert.deepEqual(conffiles.trim().split('\n'), ['/etc/mwi/mwi.yaml', '/etc/mwi/tbot.yaml']);
    },
  );

  it(
    'dpkg -i: system users and groups, /var/lib dirs 0700 owned by them, configs 0640 root:service',
    { skip },
    async () => {
      const r = await dpkg(['-i', deb]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      for (const u of ['mwi', 'tbot']) {
        const [, , uid, , , home, shell] = (await run('getent', ['passwd', u])).stdout.trim().split(':');
        assert.ok(Number(uid) < 1000, `${u}: uid ${uid} is not a system uid`);
        assert.equal(home, `/var/lib/${u}`);
        assert.equal(shell, '/usr/sbin/nologin');
        assert.ok(await groupExists(u), `group ${u}`);
        const stat = (await run('stat', ['-c', '%U:%G %a', `/var/lib/${u}`, `/etc/mwi/${u}.yaml`])).stdout;
        assert.equal(stat, `${u}:${u} 700\nroot:${u} 640\n`);
      }
      assert.equal(
        (await run('stat', ['-c', '%U:%G %a', '/usr/bin/mwi', '/etc/mwi'])).stdout,
        'root:root 755\n'.repeat(2),
      );
    },
  );

  it(
    'systemd-analyze verify accepts the installed units; they run the package paths as their users',
    { skip },
    async () => {
      for (const u of ['mwi', 'tbot']) {
        const unit = `/lib/systemd/system/${u}.service`;
        const v = await run('systemd-analyze', ['verify', unit], { timeoutMs: 60_000 });
        assert.equal(v.code, 0, v.stdout + v.stderr);
        const text = (await run('cat', [unit])).stdout;
        assert.match(text, new RegExp(`^ExecStart=/usr/bin/${u} start -c /etc/mwi/${u}\\.yaml$`, 'm'));
        assert.match(text, new RegExp(`^User=${u}\nGroup=${u}$`, 'm'));
        assert.match(text, new RegExp(`^ReadWritePaths=/var/lib/${u}$`, 'm'));
      }
    },
  );

  it(
    'the installed programs run: version; an Auth Service from /usr/bin/mwi as user mwi; /usr/bin/tctl',
    { skip },
    async () => {
      for (const p of PROGRAMS) {
        const r = await bare(`/usr/bin/${p}`, ['version']);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, new RegExp(`^${p} v${VERSION.replace(/\./g, '\\.')}\\b`));
      }
      // as mwi.service would: user mwi, the packaged (all comments) mwi.yaml, data in /var/lib/mwi
      // (port 0 by the flag: the default 3025 may be taken on a test machine)
      const setpriv = ['--reuid', 'mwi', '--regid', 'mwi', '--init-groups', '--'];
      const mwi = ['/usr/bin/mwi', 'start', '-c', '/etc/mwi/mwi.yaml', '--listen', '127.0.0.1:0'];
      const proc = spawn('setpriv', [...setpriv, ...mwi], { stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      proc.stdout.on('data', (d: Buffer) => (text += d.toString()));
      proc.stderr.on('data', (d: Buffer) => (text += d.toString()));
      auth = { proc, out: () => text, addr: '', caPin: '' };
      await waitFor('the installed mwi to listen', () => {
        if (proc.exitCode !== null) throw new Error(`mwi exited (${proc.exitCode}): ${text}`);
        return READY.test(text);
      });
      const status = await run('/usr/bin/tctl', ['status']);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /CA pin\s+sha256:[0-9a-f]{64}/);
      assert.equal((await run('stat', ['-c', '%U %a', '/var/lib/mwi/mwi.db'])).stdout, 'mwi 600\n');
      assert.equal(await stopAuth(auth), 0, text);
    },
  );

  it('a reinstall keeps an edited config (a conffile)', { skip }, async () => {
    const edited = '# edited by the administrator\nlisten: 127.0.0.1:3999\n';
    writeFileSync('/etc/mwi/mwi.yaml', edited);
    const r = await dpkg(['-i', deb]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal((await run('cat', ['/etc/mwi/mwi.yaml'])).stdout, edited);
    assert.equal((await run('stat', ['-c', '%U:%G %a', '/etc/mwi/mwi.yaml'])).stdout, 'root:mwi 640\n');
  });

  it('dpkg --purge removes programs, units, configs and data; the users stay (Debian practice)', { skip }, async () => {
    const r = await dpkg(['--purge', 'mwi']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    for (const p of ['/usr/bin/tbot', '/lib/systemd/system/mwi.service', '/etc/mwi', '/var/lib/mwi', '/var/lib/tbot'])
      assert.ok(!existsSync(p), `${p} is still there`);
    assert.doesNotMatch((await run('dpkg-statoverride', ['--list'])).stdout, /\/etc\/mwi\//);
    assert.ok(await userExists('mwi'));
  });
});
