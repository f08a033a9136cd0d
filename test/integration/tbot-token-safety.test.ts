import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { CLI_DIR, cli, exited, spawnCli, waitFor, type RunResult } from '../helpers/procs.js';

/** `nobody` on Debian: a user root can run tbot as, for permission tests that root itself would pass. */
const NOBODY = { uid: 65534, gid: 65534 };
const isRoot = process.getuid?.() === 0;

/** tbot as `nobody` (when the tests run as root, which writes anywhere) or as ourselves. */
function tbotAsUser(args: string[]): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(CLI_DIR, 'tbot.js'), ...args], {
      ...(isRoot ? NOBODY : {}),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** A tmpfs mounted at `dir` with `opts`; false when this system does not let us mount (not root). */
function mount(dir: string, opts: string): boolean {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return isRoot && spawnSync('mount', ['-t', 'tmpfs', '-o', `${opts},mode=0700`, 'tmpfs', dir]).status === 0;
}

/**
 * Issue #12, "check destinations before spending a single-use token": a destination or storage
 * that cannot be written stops tbot before it joins (exit 2, naming the field; the token still
 * joins afterwards); a failure after the join leaves no orphan instance: directory storage keeps
 * the identity for the next run, memory storage (or a storage write that failed) ends the instance.
 */
describe('tbot spends a single-use token only when it can write', () => {
  let c: TestCluster;
  /** Owned by the user tbot runs as in the permission tests (nobody, when the tests run as root). */
  let userBase: string;
  /** Ours: for the tests that run tbot as ourselves (the file system tests, as root). */
  let base: string;
  const mounts: string[] = [];
  let n = 0;
  const bot = async () => {
    const name = `safe${++n}`;
    return { name, token: await c.addBot(name, ['deploy']) };
  };
  const joins = (name: string) => c.audit().filter((e) => e.event === 'bot.join' && e.success && e.bot_name === name);
  /** Instances of bot `name` that can still be used (`live`), or that a holder of the identity ended. */
  const instances = async (name: string, which: 'live' | 'ended' = 'live') =>
    (
      JSON.parse(await c.tctlOk(['bots', 'instances', 'ls', name, '--format', 'json'])) as Array<{
        status?: { ended?: unknown };
      }>
    ).filter((i) => (i.status?.ended === undefined) === (which === 'live')).length;
  const tiny = (t: TestContext, name: string, opts: string): string | undefined => {
    const dir = join(base, name);
    if (!mount(dir, opts)) {
      t.skip('needs root to mount a tmpfs (CI runs as root)');
      return undefined;
    }
    mounts.push(dir);
    return dir;
  };

  before(async () => {
    c = await startCluster();
    base = mkdtempSync(join(tmpdir(), 'mwi-token-safety-'));
    // reachable by nobody: tbot runs as that user in the permission tests
    chmodSync(base, 0o755);
    userBase = join(base, 'user');
    mkdirSync(userBase, { mode: 0o755 });
    if (isRoot) chownSync(userBase, NOBODY.uid, NOBODY.gid);
  });
  after(async () => {
    for (const m of mounts.reverse()) spawnSync('umount', [m]);
    rmSync(base, { recursive: true, force: true });
    await c?.stop();
  });

  /** A refusal before the join: exit 2, the message, and the token joins afterwards from a good destination. */
  const refusedThenJoins = async (r: RunResult, message: RegExp, b: { name: string; token: string }) => {
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, message);
    assert.equal(joins(b.name).length, 0, 'nothing was sent');
    const ok = await tbotAsUser(['start', '--oneshot', ...tbotFlags(c, b.token, join(userBase, `${b.name}-ok`))]);
    assert.equal(ok.code, 0, `the token was not spent: ${ok.stderr}`);
  };

  it('an output directory this user cannot write (EACCES): exit 2 before the join', async () => {
    const b = await bot();
    const out = join(userBase, 'no-write');
    mkdirSync(out, { mode: 0o500 });
    if (isRoot) chownSync(out, NOBODY.uid, NOBODY.gid);
    const r = await tbotAsUser(['start', '--oneshot', ...tbotFlags(c, b.token, join(userBase, `${b.name}-st`), out)]);
    const message = new RegExp(
      `ERROR: outputs\\[0\\]\\.destination\\.path: cannot write in ${out}: permission denied \\(tbot runs as uid`,
    );
    await refusedThenJoins(r, message, b);
    assert.deepEqual(readdirSync(out), []);
  });

  it('a storage path this user cannot create (EACCES on its parent): exit 2 naming storage.path', async () => {
    const b = await bot();
    const parent = join(userBase, 'locked-parent');
    mkdirSync(parent, { mode: 0o555 });
    if (isRoot) chownSync(parent, NOBODY.uid, NOBODY.gid);
    const x = join(userBase, 'x');
    const r = await tbotAsUser(['start', '--oneshot', ...tbotFlags(c, b.token, join(parent, 'st'), x)]);
    await refusedThenJoins(r, /ERROR: storage\.path: cannot create .*locked-parent\/st: permission denied/, b);
    assert.ok(!existsSync(x), 'no output directory was left');
  });

  it('a path under a regular file: exit 2 before the join', async () => {
    const b = await bot();
    writeFileSync(join(userBase, 'plain'), 'x');
    const out = join(userBase, 'plain', 'out');
    const r = await tbotAsUser(['start', '--oneshot', ...tbotFlags(c, b.token, join(userBase, `${b.name}-st`), out)]);
    await refusedThenJoins(
      r,
      /outputs\[0\]\.destination\.path: cannot use .*plain\/out: a component of .* is a file/,
      b,
    );
  });

  it('a read-only output directory and a read-only storage: exit 2 before the join', async (t) => {
    const ro = tiny(t, 'ro', 'ro,size=64k');
    if (!ro) return;
    const b = await bot();
    const st = join(base, `${b.name}-st`);
    const out = await cli('tbot', ['start', '--oneshot', ...tbotFlags(c, b.token, st, ro)]);
    assert.equal(out.code, 2, out.stderr);
    assert.match(
      out.stderr,
      /outputs\[0\]\.destination\.path: cannot write in .*\/ro: .* is on a read-only file system/,
    );
    assert.ok(!existsSync(st), 'the storage directory made for the lock is removed again');
    const store = await cli('tbot', ['start', '--oneshot', ...tbotFlags(c, b.token, ro, join(base, 'o'))]);
    await refusedThenJoins(store, /storage\.path: cannot write in .*\/ro: .* is on a read-only file system/, b);
  });

  it('an output write failing after the join, memory storage: the instance is ended, not orphaned', async (t) => {
    // room for the write test (one small file), not for the output's nine files
    const full = tiny(t, 'full-mem', 'size=8k');
    if (!full) return;
    const b = await bot();
    const r = await cli('tbot', ['start', '--oneshot', ...tbotFlags(c, b.token, 'memory://', full)]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /ENOSPC/);
    assert.match(r.stderr, /ended this run's bot instance: its identity cannot be kept/);
    assert.equal(joins(b.name).length, 1);
    const ended = c.audit().filter((e) => e.event === 'instance.ended' && e.bot_name === b.name);
    assert.equal(ended.length, 1);
    assert.match(
      ended[0]!.reason,
      /^ended by a holder of its identity: the run failed after the join \(.*ENOSPC.*memory storage/,
    );
    assert.equal(await instances(b.name), 0, 'no orphan instance');
    assert.equal(await instances(b.name, 'ended'), 1, 'kept as evidence until it expires, marked ended');
  });

  it('a daemon with memory storage stopped before its outputs were ever written ends its instance', async (t) => {
    const full = tiny(t, 'full-daemon', 'size=8k');
    if (!full) return;
    const b = await bot();
    const tbot = spawnCli('tbot', ['start', ...tbotFlags(c, b.token, 'memory://', full)]);
    await waitFor('a failed output', () => /output .* failed, retrying/.test(tbot.out()));
    assert.equal(await instances(b.name), 1, 'a daemon keeps retrying its output meanwhile');
    tbot.kill('SIGTERM');
    assert.equal(await exited(tbot), 0, tbot.out());
    assert.match(tbot.out(), /ended this run's bot instance: .*tbot stopped before every output was written/);
    assert.equal(await instances(b.name), 0, 'no orphan instance');
    assert.equal(await instances(b.name, 'ended'), 1, 'kept as evidence until it expires, marked ended');
  });

  it('an output write failing after the join, directory storage: kept; the next run continues, no new token', async (t) => {
    const full = tiny(t, 'full-dir', 'size=8k');
    if (!full) return;
    const b = await bot();
    const st = join(base, `${b.name}-st`);
    const r = await cli('tbot', ['start', '--oneshot', ...tbotFlags(c, b.token, st, full)]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /the identity is kept in storage: run tbot again \(no new token needed\)/);
    assert.equal(spawnSync('mount', ['-o', 'remount,size=1m', full]).status, 0);
    const flags = tbotFlags(c, b.token, st, full);
    flags.splice(flags.indexOf('--token'), 2);
    const again = await cli('tbot', ['start', '--oneshot', ...flags]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /resumed identity from storage/);
    assert.ok(existsSync(join(full, 'key-cert.pub')));
    assert.equal(joins(b.name).length, 1, 'one join, one instance');
    assert.equal(await instances(b.name), 1);
  });

  it('the identity cannot be stored after the join: the instance is ended and the error says so', async (t) => {
    // 4 inodes besides the root: the lock and the write test (a directory, a file, a link) fit; the
    // state's write (a version directory, the file, ..data, the state.json link) does not
    const st = tiny(t, 'no-inodes', 'size=1m,nr_inodes=5');
    if (!st) return;
    const b = await bot();
    const r = await cli('tbot', ['start', '--oneshot', ...tbotFlags(c, b.token, st, join(base, 'never'))]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /ERROR: storage\.path: joined as bot instance [0-9a-f-]+, but its identity could not be written to directory .*no-inodes \(.*ENOSPC.*\); the instance was ended, so none is left behind\. The join token is spent/,
    );
    assert.equal(await instances(b.name), 0, 'no orphan instance');
    assert.equal(await instances(b.name, 'ended'), 1, 'kept as evidence until it expires, marked ended');
    assert.ok(!existsSync(join(base, 'never')), 'no output was written');
  });
});
