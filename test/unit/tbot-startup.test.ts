import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { validateTbotConfig } from '../../src/agent/config.js';
import { DirectoryDestination } from '../../src/agent/destinations/directory.js';
import { acquireLockFile, LOCK_FILE } from '../../src/agent/destinations/lock-file.js';
import { cannotWrite, writeTest } from '../../src/agent/destinations/write-test.js';
import { Metrics, startDiagnostics } from '../../src/agent/diagnostics.js';
import { backoffDelay, joinRetryable, joinWithRetry } from '../../src/agent/first-join.js';
import { IntervalRunner, type Health } from '../../src/agent/runtime.js';
import { isMwiError, MwiError } from '../../src/errors.js';
import type { Logger } from '../../src/util/log.js';
import { tempDir } from '../helpers/procs.js';

/** A logger that keeps its lines, as "LEVEL message". */
function recorder(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const at = (level: string) => (m: string, f?: Record<string, unknown>) =>
    lines.push(`${level} ${m}${f ? ` ${JSON.stringify(f)}` : ''}`);
  return { log: { debug: at('DEBUG'), info: at('INFO'), warn: at('WARN'), error: at('ERROR') }, lines };
}

const tmp = tempDir('tbot-startup');
after(() => tmp.cleanup());

describe('storage lock file (one storage, one tbot)', () => {
  it('refuses a lock held by a running process, naming its PID and the field; released, it is free', async () => {
    const path = join(tmp.path, 'held.lock');
    // another process "holds" it: a lock file written as tbot writes it, with its PID (no start time)
    const other = spawn('sleep', ['30']);
    try {
      writeFileSync(path, `${other.pid}\n`);
      assert.throws(
        () => acquireLockFile(path, 'storage.path'),
        (e) =>
          isMwiError(e, 'BAD_CONFIG') &&
          e.field === 'storage.path' &&
          e.message.startsWith(`storage.path: storage in use by PID ${other.pid} (${path})`),
      );
      assert.equal(readFileSync(path, 'utf8'), `${other.pid}\n`, 'the holder’s file is untouched');
    } finally {
      other.kill();
    }
  });

  it('takes over a lock whose holder no longer runs, with a warning; release removes only its own', () => {
    const path = join(tmp.path, 'stale.lock');
    const dead = spawnSync('true').pid;
    writeFileSync(path, `${dead}\nstart 1\n`);
    const { log, lines } = recorder();
    const lock = acquireLockFile(path, 'storage.path', log);
    assert.match(readFileSync(path, 'utf8'), new RegExp(`^${process.pid}\\n`));
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /^WARN taking over a storage lock left by a tbot that no longer runs/);
    assert.match(lines[0]!, new RegExp(`"pid":${dead}`));
    lock.release();
    assert.ok(!existsSync(path));
    // a lock someone else took meanwhile (this process was stopped, its lock taken over) stays theirs
    const again = acquireLockFile(path, 'storage.path');
    writeFileSync(path, '1\n');
    again.release();
    assert.equal(readFileSync(path, 'utf8'), '1\n');
  });

  it('a lock copied with the storage from another directory is not in use here, though its holder runs', () => {
    const path = join(tmp.path, 'copied.lock');
    const other = spawn('sleep', ['30']);
    try {
      // as the original tbot wrote it in its own directory: another DEV:INO than this one's
      writeFileSync(path, `${other.pid}\ndir 1:1\n`);
      const { log, lines } = recorder();
      acquireLockFile(path, 'storage.path', log).release();
      assert.match(lines.join('\n'), /^WARN taking over a storage lock copied with the storage from another directory/);
      // the same directory, another path to it: the same DEV:INO, so in use
      const st = statSync(tmp.path);
      writeFileSync(path, `${other.pid}\ndir ${st.dev}:${st.ino}\n`);
      assert.throws(() => acquireLockFile(path, 'storage.path'), /storage in use by PID/);
    } finally {
      other.kill();
    }
  });

  it('a running PID that started at another time is a reused PID: the lock is stale', (t) => {
    const path = join(tmp.path, 'reused.lock');
    // without a start time, a running PID is the holder
    writeFileSync(path, '1\n');
    assert.throws(() => acquireLockFile(path, 'storage.path'), /storage in use by PID 1 /);
    if (!existsSync('/proc/1/stat')) return t.skip('no /proc: start times are unknown here');
    // PID 1 runs, but not since this start time (field 22 of /proc/1/stat is its real one)
    writeFileSync(path, '1\nstart 123456789012\n');
    acquireLockFile(path, 'storage.path').release();
    assert.ok(!existsSync(path));
  });

  it('a directory storage takes its lock in the directory, making it (0700) when absent', () => {
    const dir = join(tmp.path, 'storage-new', 'bot');
    const d = new DirectoryDestination(dir, 'storage.path');
    const lock = d.lock();
    assert.deepEqual(readdirSync(dir), [LOCK_FILE]);
    assert.match(readFileSync(join(dir, LOCK_FILE), 'utf8'), new RegExp(`^${process.pid}\n`));
    lock.release();
    d.discard();
    assert.ok(!existsSync(join(tmp.path, 'storage-new')), 'a start that stopped leaves no directory it made');
  });
});

describe('destination checks before the join (create, write, rename, permissions)', () => {
  it('prepare tries every step of a write and leaves nothing (a directory it made is removed again)', async () => {
    const dir = join(tmp.path, 'fresh', 'out');
    await new DirectoryDestination(dir).prepare();
    assert.ok(!existsSync(join(tmp.path, 'fresh')));
    mkdirSync(join(tmp.path, 'kept'), { mode: 0o700 });
    await new DirectoryDestination(join(tmp.path, 'kept')).prepare();
    assert.deepEqual(readdirSync(join(tmp.path, 'kept')), []);
  });

  it('a path under a regular file is refused naming the field', async () => {
    writeFileSync(join(tmp.path, 'afile'), 'x');
    const d = new DirectoryDestination(join(tmp.path, 'afile', 'out'), 'outputs[0].destination.path');
    await assert.rejects(
      d.prepare(),
      (e) =>
        isMwiError(e, 'BAD_CONFIG') &&
        e.field === 'outputs[0].destination.path' &&
        /a component of .*afile\/out is a file, not a directory/.test(e.message),
    );
  });

  it('a directory this user cannot write is refused before anything is sent (non-root only)', async (t) => {
    if (process.getuid?.() === 0)
      return t.skip('root writes anywhere: test/integration/tbot-startup runs tbot as nobody');
    const dir = join(tmp.path, 'readonly');
    mkdirSync(dir, { mode: 0o500 });
    try {
      assert.throws(() => writeTest(dir, 'outputs[1].destination.path'), /permission denied/);
    } finally {
      chmodSync(dir, 0o700);
    }
  });

  it('errno codes become what the user can act on', () => {
    const err = (code: string) => Object.assign(new Error(code), { code });
    const msg = (code: string) => cannotWrite(err(code), '/x/out', 'f', 'write in').message;
    assert.match(msg('EACCES'), /^f: cannot write in \/x\/out: permission denied \(tbot runs as uid \d+\): give/);
    assert.match(msg('EPERM'), /permission denied/);
    assert.match(msg('EROFS'), /\/x\/out is on a read-only file system/);
    assert.match(msg('ENOSPC'), /no space left/);
    assert.match(msg('ENOTDIR'), /is a file, not a directory/);
    // the code once, as Node's message has it: not "EIO: EIO: i/o error"
    const eio = Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
    assert.equal(cannotWrite(eio, '/x', 'f', 'create').message, 'f: cannot create /x: EIO: i/o error, write');
    assert.match(
      cannotWrite(Object.assign(new Error('odd'), { code: 'EXYZ' }), '/x', 'f', 'create').message,
      /: EXYZ: odd$/,
    );
    assert.equal(cannotWrite(err('EIO'), '/x', 'f', 'create').code, 'BAD_CONFIG');
  });

  it('a real failure names its code once (a symlink loop: ELOOP)', () => {
    const { path: dir, cleanup } = tempDir('tbot-eloop');
    after(cleanup);
    symlinkSync('loop', join(dir, 'loop'));
    assert.throws(
      () => writeTest(join(dir, 'loop'), 'storage.path'),
      (e: Error) => {
        assert.match(e.message, /cannot write in .*\/loop: too many symbolic links \(ELOOP\)$/);
        assert.doesNotMatch(e.message, /ELOOP.*ELOOP/);
        return true;
      },
    );
  });
});

describe("a daemon's first join: retries, backoff, final refusals", () => {
  const retry = { initialMs: 5, maxMs: 20 };

  it('backoff doubles to its cap, less at most the jitter', () => {
    const top = () => 0;
    assert.deepEqual(
      [1, 2, 3, 4, 5].map((n) => backoffDelay(n, { initialMs: 1000, maxMs: 60_000 }, 0.2, top)),
      [1000, 2000, 4000, 8000, 16_000],
    );
    assert.equal(backoffDelay(10, { initialMs: 1000, maxMs: 60_000 }, 0.2, top), 60_000);
    assert.equal(
      backoffDelay(3, { initialMs: 1000, maxMs: 60_000 }, 0.2, () => 1),
      3200,
    );
  });

  it('which failures are retried: an unreachable or failing Auth Service; never a refusal', () => {
    for (const code of ['UNREACHABLE', 'RATE_LIMITED', 'INTERNAL', 'STORAGE', 'COMPARE_FAILED'] as const)
      assert.ok(joinRetryable(new MwiError(code, 'x')), code);
    for (const code of [
      'JOIN_DENIED',
      'LOCKED',
      'CA_PIN_MISMATCH',
      'BAD_CONFIG',
      'BAD_REQUEST',
      'ACCESS_DENIED',
    ] as const)
      assert.ok(!joinRetryable(new MwiError(code, 'x')), code);
    assert.ok(!joinRetryable(new TypeError('a bug')));
  });

  it('retries while unreachable, logging each attempt and its reason on /readyz, then joins', async () => {
    const { log, lines } = recorder();
    const health: Health = { status: 'initializing', reason: 'joining' };
    let calls = 0;
    const joined = await joinWithRetry(
      async () => {
        if (++calls < 3) throw new MwiError('UNREACHABLE', `cannot reach the Auth Service at a:1: ECONNREFUSED`);
      },
      { retry, log, signal: new AbortController().signal, health },
    );
    assert.equal(joined, true);
    assert.equal(calls, 3);
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /^WARN first join failed, retrying \{"attempt":1,"retry_in":"0\.0s","error":"cannot reach/);
    assert.match(lines[1]!, /"attempt":2/);
    assert.deepEqual(health, {
      status: 'unhealthy',
      reason: 'joining: cannot reach the Auth Service at a:1: ECONNREFUSED',
    });
  });

  it('a refused join is final: thrown at once, and the log says why it is not retried', async () => {
    const { log, lines } = recorder();
    let calls = 0;
    const refusal = new MwiError('JOIN_DENIED', 'the join was refused; the Auth Service audit log has the reason');
    await assert.rejects(
      joinWithRetry(
        async () => {
          calls++;
          throw refusal;
        },
        { retry, log, signal: new AbortController().signal, health: { status: 'initializing' } },
      ),
      refusal,
    );
    assert.equal(calls, 1);
    assert.match(lines.join('\n'), /^ERROR the Auth Service refused the join: not retried \(a refusal is final/);
  });

  it('a stop while waiting ends the retries (false: not joined)', async () => {
    const ac = new AbortController();
    const joined = joinWithRetry(
      async () => {
        setTimeout(() => ac.abort(), 5);
        throw new MwiError('UNREACHABLE', 'down');
      },
      { retry: { initialMs: 60_000, maxMs: 60_000 }, log: recorder().log, signal: ac.signal, health: {} as Health },
    );
    assert.equal(await joined, false);
  });
});

describe('readiness and warnings', () => {
  it('a runner told its job was just done is healthy before its first run', () => {
    const opts = {
      name: 'identity renewal',
      intervalMs: 60_000,
      retry: { initialMs: 1, maxMs: 1 },
      log: recorder().log,
    };
    assert.equal(new IntervalRunner(async () => {}, opts).health.status, 'initializing');
    const fresh = new IntervalRunner(async () => {}, { ...opts, healthyAtStart: true });
    assert.equal(fresh.health.status, 'healthy');
    assert.ok(fresh.health.lastSuccess! <= Date.now());
  });

  it('/readyz carries warnings (still 200), per service and in one list', async () => {
    const services = new Map<string, Health>([
      ['identity', { status: 'healthy' }],
      ['deploy', { status: 'healthy', warnings: ['no logins'] }],
    ]);
    const diag = await startDiagnostics('127.0.0.1:0', { services, metrics: new Metrics() }, recorder().log);
    try {
      const res = await fetch(`http://${diag.address}/readyz`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), {
        status: 'ready',
        services: { identity: { status: 'healthy' }, deploy: { status: 'healthy', warnings: ['no logins'] } },
        warnings: ['deploy: no logins'],
      });
      const one = await fetch(`http://${diag.address}/readyz/identity`);
      assert.deepEqual(await one.json(), { status: 'ready', services: { identity: { status: 'healthy' } } });
    } finally {
      await diag.close();
    }
  });
});

describe('tbot.yaml without a token', () => {
  it('is valid: a restart with an identity in storage needs none (startBot asks for it only to join)', () => {
    const cfg = validateTbotConfig(
      {
        version: 'v2',
        auth_server: '127.0.0.1:3025',
        onboarding: { join_method: 'token', ca_pins: [`sha256:${'a'.repeat(64)}`] },
      },
      {},
    );
    assert.equal(cfg.token, undefined);
  });
});
