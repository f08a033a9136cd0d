import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildTbotFile, validateTbotConfig } from '../../src/agent/config.js';
import { isMwiError } from '../../src/errors.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { CLI_DIR, tempDir, waitFor } from '../helpers/procs.js';

/** The shell lines tctl prints for the user to run: "> " lines and their "\" continuations. */
function shellLines(out: string): string[] {
  const lines: string[] = [];
  let cur: string | undefined;
  for (const l of out.split('\n')) {
    if (cur !== undefined) cur += `\n${l}`;
    else if (l.startsWith('> ')) cur = l.slice(2);
    else continue;
    if (!cur.endsWith('\\')) {
      lines.push(cur);
      cur = undefined;
    }
  }
  return lines;
}

/** The argv of every process whose working directory is `dir` (Linux /proc). */
function argvsIn(dir: string): string[][] {
  const out: string[][] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      if (readlinkSync(`/proc/${pid}/cwd`) === dir)
        out.push(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean));
    } catch {
      // gone, or not ours
    }
  }
  return out;
}

describe('finding 13: secrets in argv', () => {
  let c: TestCluster;
  before(async () => {
    c = await startCluster('f13.example');
    writeFileSync(
      join(c.dir, 'role.yaml'),
      'kind: role\nversion: v7\nmetadata: { name: f13 }\nspec:\n  allow: { logins: [nobody] }\n',
    );
    await c.tctlOk(['create', '-f', join(c.dir, 'role.yaml')]);
  });
  after(async () => c?.stop());

  it('finding 13: tctl bots add prints a tbot start line without the secret, and following it literally joins', async () => {
    const out = await c.tctlOk(['bots', 'add', 'f13', '--roles', 'f13']);
    const token = /The bot token: ([0-9a-f]{32})/.exec(out)?.[1];
    assert.ok(token, out);
    const lines = shellLines(out);
    const start = lines.find((l) => l.startsWith('tbot start'));
    assert.ok(start, out);
    assert.ok(!start.includes(token), `the tbot start command holds the secret in its argv:\n${start}`);
    // the other lines put it in a file with shell builtins only (no process gets it as an argument)
    for (const l of lines.filter((x) => x !== start && x.includes(token)))
      assert.match(l, /^\(umask 077; echo [0-9a-f]{32} > [\w.-]+\)$/, l);

    // follow the printed lines in a fresh directory, with tbot on PATH
    const work = tempDir('f13-work');
    const bin = tempDir('f13-bin');
    try {
      writeFileSync(
        join(bin.path, 'tbot'),
        `#!/bin/sh\nexec "${process.execPath}" "${join(CLI_DIR, 'tbot.js')}" "$@"\n`,
      );
      chmodSync(join(bin.path, 'tbot'), 0o755);
      const sh = spawn('bash', ['-e', '-c', lines.join('\n')], {
        cwd: work.path,
        env: { ...process.env, PATH: `${bin.path}:${process.env.PATH}` },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      let log = '';
      sh.stdout.on('data', (d: Buffer) => (log += d.toString()));
      sh.stderr.on('data', (d: Buffer) => (log += d.toString()));
      try {
        await waitFor(
          'tbot to write its identity output',
          () => {
            if (sh.exitCode !== null) throw new Error(`the printed commands exited ${sh.exitCode}: ${log}`);
            return existsSync(join(work.path, 'tbot-user', 'tlscert'));
          },
          30_000,
        );
        assert.equal(statSync(join(work.path, 'tbot-token')).mode & 0o777, 0o600, 'the token file is private');
        const argvs = argvsIn(work.path);
        assert.ok(
          argvs.some((a) => a.some((x) => x.endsWith('tbot.js'))),
          `tbot runs: ${JSON.stringify(argvs)}`,
        );
        for (const a of argvs)
          assert.ok(!a.join(' ').includes(token), `a process shows the token in ps: ${a.join(' ')}`);
        const inst = JSON.parse(await c.tctlOk(['bots', 'instances', 'ls', 'f13', '--format', 'json']));
        assert.equal(inst.length, 1, 'the bot joined');
      } finally {
        try {
          process.kill(-sh.pid!, 'SIGTERM');
        } catch {
          // already gone
        }
      }
    } finally {
      work.cleanup();
      bin.cleanup();
    }
  });

  it('finding 13: tctl tokens add says how to keep the secret off the command line', async () => {
    const out = await c.tctlOk(['tokens', 'add', '--type=bot', '--bot-name', 'f13']);
    assert.match(out, /The invite token: [0-9a-f]{32}/);
    assert.match(out, /write it to a file and give tbot the absolute path as --token, or set TELEPORT_BOT_TOKEN/);
  });

  it('finding 13: tbot takes the token from TELEPORT_BOT_TOKEN (a value or a file path), and refuses an unreadable path', () => {
    const dir = tempDir('f13-env');
    try {
      const file = join(dir.path, 'token');
      writeFileSync(file, 'abcdef0123456789abcdef0123456789\n', { mode: 0o600 });
      const flags = { 'auth-server': 'a:1', 'ca-pin': [`sha256:${'b'.repeat(64)}`] };
      assert.equal(
        validateTbotConfig(buildTbotFile(flags), { TELEPORT_BOT_TOKEN: file }).token,
        'abcdef0123456789abcdef0123456789',
      );
      assert.equal(
        validateTbotConfig(buildTbotFile(flags), { TELEPORT_BOT_TOKEN: 'inline-token' }).token,
        'inline-token',
      );
      // a flag wins over the environment, as in Teleport
      assert.equal(
        validateTbotConfig(buildTbotFile({ ...flags, token: file }), { TELEPORT_BOT_TOKEN: 'other' }).token,
        'abcdef0123456789abcdef0123456789',
      );
      // a path that names no file is an error, never sent to the Auth Service as the token
      assert.throws(
        () => validateTbotConfig(buildTbotFile({ ...flags, token: join(dir.path, 'missing') }), {}),
        (e: unknown) =>
          isMwiError(e, 'BAD_CONFIG') && e.field === 'onboarding.token' && /does not exist/.test(e.message),
      );
    } finally {
      dir.cleanup();
    }
  });
});
