import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CachedPodSource, type Pod } from '../../src/agent/workload-api/attest/kubernetes.js';
import { attestUnix } from '../../src/agent/workload-api/attest/unix.js';
import { RefusalCache } from '../../src/agent/workload-api/cache.js';
import { checkPin, pinProcess, releasePin, startTime } from '../../src/agent/workload-api/process.js';
import { tempDir } from '../helpers/procs.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('workload api: the connected process is pinned', () => {
  let tmp: { path: string; cleanup: () => void };
  before(() => (tmp = tempDir('wlapi-pin')));
  after(() => tmp.cleanup());

  it('start time: field 22 of /proc/PID/stat, even with spaces and parentheses in the command name', () => {
    const pid = join(tmp.path, '77');
    mkdirSync(pid);
    const rest = Array.from({ length: 50 }, (_, i) => String(i + 3));
    writeFileSync(join(pid, 'stat'), `77 (a) b (c) ${rest.join(' ')}\n`);
    assert.equal(startTime(77, tmp.path), '22');
    assert.equal(startTime(78, tmp.path), undefined);
  });

  it('a process that exits is no longer the one pinned (pidfd, start time)', async () => {
    const child = spawn('sleep', ['30']);
    await tick(100);
    const pin = pinProcess(child.pid!)!;
    assert.ok(pin.pidfd >= 0, 'a pidfd (Linux 5.3+)');
    assert.equal(checkPin(pin), undefined);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.match(checkPin(pin) ?? '', /exited/);
    releasePin(pin);
  });

  it('a process that execs another executable is no longer the one pinned', async () => {
    const child = spawn('sh', ['-c', 'read x; exec sleep 30'], { stdio: ['pipe', 'ignore', 'ignore'] });
    await tick(100);
    const pin = pinProcess(child.pid!)!;
    assert.equal(checkPin(pin), undefined);
    child.stdin.write('go\n');
    await tick(300);
    assert.match(checkPin(pin) ?? '', /runs another executable than the one attested/);
    child.kill('SIGKILL');
    releasePin(pin);
  });

  it("binary_path only for a process in tbot's mount namespace; the hash still", async () => {
    const proc = join(tmp.path, 'proc');
    mkdirSync(join(proc, '9', 'ns'), { recursive: true });
    mkdirSync(join(proc, 'self', 'ns'), { recursive: true });
    symlinkSync(process.execPath, join(proc, '9', 'exe'));
    symlinkSync('mnt:[1]', join(proc, '9', 'ns', 'mnt'));
    symlinkSync('mnt:[2]', join(proc, 'self', 'ns', 'mnt'));
    const cred = { pid: 9, uid: 1, gid: 1 };
    const other = await attestUnix(cred, { binaryHashMaxSizeBytes: -1, procRoot: proc, hashCache: new Map() });
    assert.equal(other.binary_path, undefined);
    assert.match(other.binary_hash ?? '', /^[0-9a-f]{64}$/);
    const same = join(proc, 'self', 'ns', 'mnt');
    rmSync(same);
    symlinkSync('mnt:[1]', same);
    const own = await attestUnix(cred, { binaryHashMaxSizeBytes: -1, procRoot: proc, hashCache: new Map() });
    assert.equal(own.binary_path, process.execPath);
  });

  it('a hash stops when the connection closes (its signal aborts): no hash, nothing cached', async () => {
    const cred = { pid: process.pid, uid: 0, gid: 0 };
    const hashCache = new Map<string, string>();
    const a = await attestUnix(cred, { binaryHashMaxSizeBytes: -1, hashCache }, { signal: AbortSignal.abort() });
    assert.equal(a.binary_hash, undefined);
    assert.equal(hashCache.size, 0);
  });
});

describe('workload api: refusals and the kubelet are asked sparingly', () => {
  it('a refusal is answered again for 5 s without asking; a uid refused too often gets the fallback', async () => {
    let now = 1000;
    const c = new RefusalCache(
      5000,
      3,
      (e) => e instanceof Error && e.message === 'no',
      () => now,
    );
    let asked = 0;
    const refuse = () => {
      asked++;
      return Promise.reject(new Error('no'));
    };
    const tooMany = () => new Error('too many');
    await assert.rejects(c.run('k1', 7, refuse, tooMany), /no/);
    await assert.rejects(c.run('k1', 7, refuse, tooMany), /no/);
    assert.equal(asked, 1);
    await assert.rejects(c.run('k2', 7, refuse, tooMany), /no/);
    await assert.rejects(c.run('k3', 7, refuse, tooMany), /no/);
    await assert.rejects(c.run('k4', 7, refuse, tooMany), /too many/);
    assert.equal(asked, 3);
    assert.equal(await c.run('k4', 8, () => Promise.resolve('ok'), tooMany), 'ok', 'another uid is not held');
    now += 5001;
    await assert.rejects(c.run('k1', 7, refuse, tooMany), /no/);
    assert.equal(asked, 4, 'asked again after the TTL');
  });

  it("the kubelet's /pods: one fetch in flight, kept 2 s, a failure not kept", async () => {
    let now = 0;
    let fetches = 0;
    let fail = false;
    const src = new CachedPodSource(
      {
        pods: async () => {
          fetches++;
          await tick(20);
          if (fail) throw new Error('down');
          return [{ metadata: { name: 'p' } }] as Pod[];
        },
      },
      2000,
      () => now,
    );
    const all = await Promise.all([src.pods(), src.pods(), src.pods()]);
    assert.equal(fetches, 1);
    assert.equal(all[2][0]!.metadata!.name, 'p');
    now = 1999;
    await src.pods();
    assert.equal(fetches, 1);
    now = 2000;
    fail = true;
    await assert.rejects(src.pods(), /down/);
    fail = false;
    await src.pods();
    assert.equal(fetches, 3);
  });
});
