import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cli, tempDir } from '../helpers/procs.js';

type Program = 'tctl' | 'tbot' | 'mwi';

const hasZsh = spawnSync('zsh', ['-fc', 'true']).status === 0;

/**
 * Shell completion from each program's command table (issue #12, item 7): the script each
 * program prints is sourced in a real bash (and zsh), and its function is called as the shell
 * would call it on TAB, with the words typed so far.
 */
describe('shell completion: tctl, tbot and mwi completion bash|zsh', () => {
  const dir = tempDir('completion');
  const scripts = new Map<string, string>();
  before(async () => {
    for (const program of ['tctl', 'tbot', 'mwi'] as const)
      for (const shell of ['bash', 'zsh']) {
        const r = await cli(program, ['completion', shell]);
        assert.equal(r.code, 0, r.stderr);
        const file = join(dir.path, `${program}.${shell}`);
        writeFileSync(file, r.stdout);
        scripts.set(`${program}.${shell}`, file);
      }
  });
  after(() => dir.cleanup());

  /** What bash offers after `words` (the last one is the word being completed). */
  const bash = (program: Program, words: string[]): string[] => {
    const script =
      `source ${JSON.stringify(scripts.get(`${program}.bash`))}\n` +
      `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}\n` +
      `_${program}_completion; printf '%s\\n' "\${COMPREPLY[@]}"\n`;
    const r = spawnSync('bash', ['--norc', '--noprofile', '-c', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return r.stdout.split('\n').filter(Boolean);
  };

  /** What zsh's function hands to compadd (zsh itself keeps those that match the word typed). */
  const zsh = (program: Program, words: string[]): string[] => {
    const script =
      'compadd() { [[ $1 == -- ]] && shift; print -l -- "$@"; }\n' +
      '_files() { print -- "<files $*>"; }\n' +
      'compdef() { :; }\n' +
      `source ${JSON.stringify(scripts.get(`${program}.zsh`))}\n` +
      `words=(${words.map((w) => `'${w}'`).join(' ')}); CURRENT=${words.length}\n` +
      `_${program}\n`;
    const r = spawnSync('zsh', ['-f', '-c', script], { encoding: 'utf8' });
    assert.equal(r.status === 0 || r.status === 1, true, r.stderr);
    return r.stdout.split('\n').filter(Boolean);
  };

  it('bash: commands, subcommands through aliases, flags of the command, flag values', () => {
    assert.deepEqual(bash('tctl', ['tctl', 'bo']), ['bots', 'bound-keypair']);
    assert.deepEqual(bash('tctl', ['tctl', 'bots', '']), ['add', 'ls', 'rm', 'update', 'instances']);
    assert.deepEqual(bash('tctl', ['tctl', 'bot', 'instances', 'l']), ['ls']);
    assert.deepEqual(bash('tctl', ['tctl', 'tokens', 'l']), ['ls']);
    assert.deepEqual(bash('tctl', ['tctl', 'bots', 'add', 'robot', '--r']), ['--roles']);
    // a global flag and its value before the command do not hide it
    assert.deepEqual(bash('tctl', ['tctl', '--data-dir', '/d', 'bots', 'add', '--fo']), ['--format']);
    assert.deepEqual(bash('tctl', ['tctl', 'bots', 'add', '--format', '']), ['text', 'json']);
    assert.deepEqual(bash('tctl', ['tctl', 'get', '--format', '']), ['yaml', 'json', 'text']);
    assert.deepEqual(bash('tctl', ['tctl', 'tokens', 'add', '--join-method', 'gi']), ['github', 'gitlab']);
    assert.deepEqual(bash('tctl', ['tctl', 'ca', 'export', '--type', 'ssh']), ['ssh-user', 'ssh-host']);
    assert.deepEqual(bash('tctl', ['tctl', 'audit', 'ls', '--type', 'lock.']), ['lock.created', 'lock.deleted']);
    assert.deepEqual(bash('tctl', ['tctl', 'completion', '']), ['bash', 'zsh']);
    // Teleport's refused flags are not offered; a value-taking flag's value is not a command
    assert.ok(!bash('tctl', ['tctl', 'lock', '--']).includes('--role'));
    assert.deepEqual(bash('tctl', ['tctl', 'bots', 'add', '--roles', '']), []);
    assert.deepEqual(bash('tbot', ['tbot', 'start', '']), ['identity', 'legacy', 'id', 'ssh']);
    assert.deepEqual(bash('tbot', ['tbot', 'start', '--log-format', '']), ['text', 'json']);
    assert.deepEqual(bash('tbot', ['tbot', 'keypair', '']), ['create']);
    assert.deepEqual(bash('tbot', ['tbot', 'keypair', 'create', '--st']), [
      '--storage',
      '--static',
      '--static-key-path',
    ]);
    assert.deepEqual(bash('mwi', ['mwi', 'start', '--w']), ['--workers']);
    assert.deepEqual(bash('mwi', ['mwi', '']), ['start', 'install', 'backend', 'version', 'completion']);
    assert.deepEqual(bash('mwi', ['mwi', 'install', '']), ['systemd']);
    assert.deepEqual(bash('tbot', ['tbot', 'install', '']), ['systemd']);
  });

  it('bash: a file or directory flag completes paths', () => {
    writeFileSync(join(dir.path, 'role.yaml'), '');
    const offered = bash('tctl', ['tctl', 'create', join(dir.path, 'ro')]);
    assert.deepEqual(offered, [join(dir.path, 'role.yaml')]);
    assert.deepEqual(bash('tctl', ['tctl', '--data-dir', join(dir.path, 'zz')]), []);
  });

  it('zsh: the script parses (zsh -n) and offers the same words', { skip: !hasZsh && 'zsh is not installed' }, () => {
    for (const program of ['tctl', 'tbot', 'mwi']) {
      const r = spawnSync('zsh', ['-n', scripts.get(`${program}.zsh`)!], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${program}: ${r.stderr}`);
    }
    assert.deepEqual(zsh('tctl', ['tctl', 'bots', '']), ['add', 'ls', 'rm', 'update', 'instances']);
    assert.deepEqual(zsh('tctl', ['tctl', '-i', 'x', 'bot', 'instances', 'add', '--']).sort(), [
      '--auth-server',
      '--data-dir',
      '--format',
      '--help',
      '--identity',
      '--token',
      '--ttl',
      '--version',
    ]);
    assert.deepEqual(zsh('tctl', ['tctl', 'status', '--format', '']), ['text', 'json']);
    assert.deepEqual(zsh('tctl', ['tctl', 'create', '']), ['<files >']);
    assert.deepEqual(zsh('tbot', ['tbot', 'start', '--destination-dir', '']), ['<files -/>']);
    assert.deepEqual(zsh('mwi', ['mwi', 'start', '--listen', '']), []);
  });

  it('completion takes bash or zsh only', async () => {
    const r = await cli('tctl', ['completion', 'fish']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /SHELL: expected one of: bash, zsh \(got "fish"\)/);
    const none = await cli('tbot', ['completion']);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /SHELL: is required \(usage: tbot completion SHELL\)/);
  });
});
