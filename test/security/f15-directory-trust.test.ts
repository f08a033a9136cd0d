import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DirectoryDestination } from '../../src/agent/destinations/directory.js';
import { isMwiError } from '../../src/errors.js';
import { mkdirPrivate } from '../../src/util/fs.js';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { cli, tempDir } from '../helpers/procs.js';

/** A directory made with the given mode, whatever the umask. */
function dirWithMode(path: string, mode: number): string {
  mkdirSync(path, { recursive: true });
  chmodSync(path, mode);
  return path;
}

describe('finding 15: pre-existing directories and symlinks are not trusted as they are', () => {
  let c: TestCluster;
  let tmp: { path: string; cleanup: () => void };
  before(async () => {
    c = await startCluster('f15.example');
    tmp = tempDir('f15');
  });
  after(async () => {
    await c?.stop();
    tmp?.cleanup();
  });

  it('finding 15: mwi start refuses a 0777 data dir, naming the path and the fix, exit code 2', async () => {
    const dataDir = dirWithMode(join(tmp.path, 'auth-0777'), 0o777);
    const r = await cli('mwi', ['start', '--data-dir', dataDir, '--listen', '127.0.0.1:0'], { timeoutMs: 20_000 });
    assert.equal(r.code, 2, `exit code (signal ${r.signal}): ${r.stderr}`);
    assert.ok(r.stderr.includes(`chmod 0700 ${dataDir}`), r.stderr);
    assert.equal(statSync(dataDir).mode & 0o777, 0o777, 'left as it was: the owner decides');
    assert.ok(!existsSync(join(dataDir, 'mwi.db')), 'nothing written into it');
  });

  it('finding 15: a 0777 directory inside the data dir is refused too, and the half-started Auth Service stops serving', async () => {
    const dataDir = dirWithMode(join(tmp.path, 'auth-inner'), 0o700);
    dirWithMode(join(dataDir, 'admin'), 0o777);
    const r = await cli('mwi', ['start', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--cluster-name', 'inner'], {
      timeoutMs: 20_000,
    });
    // before: the error was printed, but the port stayed open and answered until the process was killed
    assert.equal(r.code, 2, `exit code (signal ${r.signal}): ${r.stderr}`);
    assert.ok(r.stderr.includes(`chmod 0700 ${join(dataDir, 'admin')}`), r.stderr);
    // with workers too: before, each worker printed the error and they all stayed up serving nothing
    const w = await cli(
      'mwi',
      ['start', '--data-dir', dataDir, '--listen', '127.0.0.1:0', '--cluster-name', 'inner', '--workers', '2'],
      { timeoutMs: 20_000 },
    );
    assert.equal(w.code, 2, `exit code with --workers 2 (signal ${w.signal}): ${w.stderr}`);
    assert.match(w.stderr, /an auth worker failed to start/);
  });

  it('finding 15: a data dir owned by another user is refused; a new one is made 0700', () => {
    const other = dirWithMode(join(tmp.path, 'auth-other'), 0o700);
    chownSync(other, 65534, 65534);
    assert.throws(
      () => mkdirPrivate(other),
      (e: unknown) => isMwiError(e, 'BAD_CONFIG') && e.message.includes(other) && /owned by uid 65534/.test(e.message),
    );
    const fresh = join(tmp.path, 'fresh', 'auth');
    mkdirPrivate(fresh);
    assert.equal(statSync(fresh).mode & 0o777, 0o700);
    // group-readable is not group-writable: allowed (a reader group may need it)
    const readable = dirWithMode(join(tmp.path, 'auth-0750'), 0o750);
    mkdirPrivate(readable);
  });

  it('finding 15: tbot refuses a 0777 storage dir and a 0777 destination, naming the path and the fix', async () => {
    const token = await c.addBot('f15a', ['nobody']);
    const storage = dirWithMode(join(tmp.path, 'storage-0777'), 0o777);
    const r = await cli('tbot', ['start', '--oneshot', ...tbotFlags(c, token, storage, join(tmp.path, 'out-a'))]);
    assert.equal(r.code, 2, r.stderr);
    assert.ok(r.stderr.includes(`chmod 0700 ${storage}`), r.stderr);
    assert.ok(!existsSync(join(storage, 'state.json')), 'no identity written into it');

    const out = dirWithMode(join(tmp.path, 'out-0777'), 0o777);
    const r2 = await cli('tbot', ['start', '--oneshot', ...tbotFlags(c, token, join(tmp.path, 'storage-a'), out)]);
    assert.notEqual(r2.code, 0, r2.stderr);
    assert.ok(r2.stderr.includes(`chmod 0700 ${out}`), r2.stderr);
    assert.ok(!existsSync(join(out, 'key')), 'no key written into it');

    // a destination path that is itself a symlink (here to a world-writable directory) is refused:
    // whoever can change the link would choose where keys go
    const shared = dirWithMode(join(tmp.path, 'shared-0777'), 0o777);
    const link = join(tmp.path, 'out-link');
    symlinkSync(shared, link);
    await assert.rejects(
      new DirectoryDestination(link).writeAll([{ name: 'key', data: 'secret', mode: 0o600 }]),
      (e: unknown) => isMwiError(e, 'BAD_CONFIG') && e.message.includes(`${link} is a symlink`),
    );
    assert.ok(!existsSync(join(shared, 'key')));
  });

  it('finding 15: a planted symlink tlscert -> victim is replaced, never written through or kept', async () => {
    const token = await c.addBot('f15b', ['nobody']);
    const victim = join(tmp.path, 'victim');
    writeFileSync(victim, 'victim content\n');
    const out = dirWithMode(join(tmp.path, 'out-planted'), 0o700);
    symlinkSync(victim, join(out, 'tlscert'));
    symlinkSync(victim, join(out, 'key'));
    const evilData = dirWithMode(join(tmp.path, 'evil-data'), 0o700);
    writeFileSync(join(evilData, 'tlscacerts'), 'attacker CA\n');
    symlinkSync(evilData, join(out, '..data'));
    const r = await cli('tbot', ['start', '--oneshot', ...tbotFlags(c, token, join(tmp.path, 'storage-b'), out)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(victim, 'utf8'), 'victim content\n', 'the victim is untouched');
    assert.equal(readFileSync(join(evilData, 'tlscacerts'), 'utf8'), 'attacker CA\n');
    for (const name of ['tlscert', 'key', 'tlscacerts']) {
      assert.ok(lstatSync(join(out, name)).isSymbolicLink());
      assert.equal(readlinkSync(join(out, name)), join('..data', name), `${name} points into tbot's own set`);
    }
    assert.match(readlinkSync(join(out, '..data')), /^\.\.v-/);
    assert.match(readFileSync(join(out, 'tlscert'), 'utf8'), /^-----BEGIN CERTIFICATE-----/);
    assert.match(readFileSync(join(out, 'key'), 'utf8'), /PRIVATE KEY/);
  });

  it('finding 15: a destination whose parent someone else can change is refused (they could swap it for a link mid-write)', async () => {
    const foreignParent = dirWithMode(join(tmp.path, 'parent-nobody'), 0o755);
    const inForeign = dirWithMode(join(foreignParent, 'out'), 0o700);
    chownSync(foreignParent, 65534, 65534);
    await assert.rejects(
      new DirectoryDestination(inForeign).writeAll([{ name: 'tlscert', data: 'x', mode: 0o600 }]),
      (e) => isMwiError(e, 'BAD_CONFIG') && /on the path to .* is a directory owned by uid 65534/.test(e.message),
    );
    const openParent = dirWithMode(join(tmp.path, 'parent-0777'), 0o777);
    const inOpen = dirWithMode(join(openParent, 'out'), 0o700);
    await assert.rejects(
      new DirectoryDestination(inOpen).writeAll([{ name: 'tlscert', data: 'x', mode: 0o600 }]),
      (e) =>
        isMwiError(e, 'BAD_CONFIG') && /writable by others .* without the sticky bit: .*chmod go-w/.test(e.message),
    );
    assert.ok(!existsSync(join(inOpen, 'tlscert')), 'nothing written');
    // a link on the way that someone else owns: they could point it elsewhere between the
    // check and the writes (review: the check once looked only at the path the link resolved to)
    const realParent = dirWithMode(join(tmp.path, 'real-parent'), 0o700);
    const link = join(tmp.path, 'their-link');
    symlinkSync(realParent, link);
    lchownSync(link, 65534, 65534);
    dirWithMode(join(realParent, 'out'), 0o700);
    await assert.rejects(
      new DirectoryDestination(join(link, 'out')).writeAll([{ name: 'tlscert', data: 'x', mode: 0o600 }]),
      (e) =>
        isMwiError(e, 'BAD_CONFIG') && /their-link, on the path to .* is a symlink owned by uid 65534/.test(e.message),
    );
    assert.throws(
      () => mkdirPrivate(join(link, 'auth')),
      (e) => isMwiError(e, 'BAD_CONFIG') && /is a symlink owned by uid 65534/.test(e.message),
    );
    // a sticky world-writable parent (as /tmp) lets nobody rename what they do not own: accepted
    const sticky = dirWithMode(join(tmp.path, 'parent-1777'), 0o1777);
    const inSticky = dirWithMode(join(sticky, 'out'), 0o700);
    await new DirectoryDestination(inSticky).writeAll([{ name: 'tlscert', data: 'x', mode: 0o600 }]);
    assert.equal(readFileSync(join(inSticky, 'tlscert'), 'utf8'), 'x');
  });

  it('finding 15: a write that fails half way leaves no version directory behind', async () => {
    const dir = dirWithMode(join(tmp.path, 'failing-write'), 0o700);
    await assert.rejects(
      new DirectoryDestination(dir).writeAll([
        { name: 'ok', data: 'x', mode: 0o600 },
        { name: 'a/b', data: 'x', mode: 0o600 },
      ]),
      TypeError,
    );
    assert.deepEqual(
      readdirSync(dir).filter((n) => n.startsWith('..v-')),
      [],
    );
  });

  it('finding 15: a destination never reads through a symlink it did not create', async () => {
    const dir = dirWithMode(join(tmp.path, 'read-planted'), 0o700);
    const d = new DirectoryDestination(dir);
    await d.writeAll([{ name: 'state.json', data: '{"mine":true}', mode: 0o600 }]);
    assert.equal(await d.read('state.json'), '{"mine":true}');
    const secret = join(tmp.path, 'elsewhere.json');
    writeFileSync(secret, '{"planted":true}');
    // a foreign symlink in place of a visible name, and in place of ..data
    const planted = dirWithMode(join(tmp.path, 'read-planted-2'), 0o700);
    symlinkSync(secret, join(planted, 'state.json'));
    assert.equal(await new DirectoryDestination(planted).read('state.json'), undefined);
    const evil = dirWithMode(join(tmp.path, 'evil-v'), 0o700);
    writeFileSync(join(evil, 'state.json'), '{"planted":true}');
    const planted3 = dirWithMode(join(tmp.path, 'read-planted-3'), 0o700);
    symlinkSync(join('..data', 'state.json'), join(planted3, 'state.json'));
    symlinkSync(evil, join(planted3, '..data'));
    assert.equal(await new DirectoryDestination(planted3).read('state.json'), undefined);
    // the next write replaces the foreign names atomically
    await new DirectoryDestination(planted3).writeAll([{ name: 'state.json', data: '{"mine":2}', mode: 0o600 }]);
    assert.equal(await new DirectoryDestination(planted3).read('state.json'), '{"mine":2}');
    assert.equal(readFileSync(join(evil, 'state.json'), 'utf8'), '{"planted":true}');
  });
});
