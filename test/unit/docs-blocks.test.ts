import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { docScript, docSteps } from '../helpers/docs-blocks.js';

const page = (...parts: string[]) => parts.join('\n');

describe('docs blocks', () => {
  it('reads run, skip, file and hidden steps in order', () => {
    const steps = docSteps(
      page(
        '# Title',
        '<!-- test: run -->',
        '',
        '```sh',
        'echo one',
        '```',
        'Some prose.',
        '<!-- test: skip: needs systemd as PID 1 -->',
        '```bash',
        'systemctl start tbot',
        '```',
        '<!-- test: file conf/tbot.yaml -->',
        '```yaml',
        'version: v2',
        '```',
        '<!-- test: hidden',
        'mkdir -p x',
        '-->',
        '```yaml',
        'not: a command, no marker needed',
        '```',
      ),
    );
    assert.deepEqual(
      steps.map((s) => s.kind),
      ['run', 'skip', 'file', 'hidden'],
    );
    assert.deepEqual(steps[0], { kind: 'run', line: 4, code: 'echo one' });
    assert.deepEqual(steps[1], { kind: 'skip', line: 9, reason: 'needs systemd as PID 1' });
    assert.deepEqual(steps[2], { kind: 'file', line: 13, name: 'conf/tbot.yaml', text: 'version: v2' });
    assert.deepEqual(steps[3], { kind: 'hidden', line: 16, code: 'mkdir -p x' });
  });

  it('refuses a shell block without a marker, naming its line (an unlabelled block counts)', () => {
    assert.throws(() => docSteps(page('text', '```', 'ls', '```')), /line 2: a shell block without a marker/);
    assert.throws(() => docSteps(page('```console', 'ls', '```')), /line 1: a shell block without a marker/);
  });

  it('refuses markers that lead nowhere, doubled markers, unknown ones and skips without a reason', () => {
    assert.throws(() => docSteps('<!-- test: run -->\nprose\n```sh\nls\n```'), /line 1: the marker is not followed/);
    assert.throws(() => docSteps('<!-- test: run -->'), /line 1: the marker is not followed/);
    assert.throws(() => docSteps('<!-- test: run -->\n<!-- test: run -->\n```sh\nls\n```'), /line 2: a second/);
    assert.throws(() => docSteps('<!-- test: runn -->\n```sh\nls\n```'), /unknown marker "test: runn"/);
    assert.throws(() => docSteps('<!-- test: skip -->\n```sh\nls\n```'), /needs a reason/);
    assert.throws(() => docSteps('<!-- test: run -->\n```yaml\na: 1\n```'), /for shell blocks; this one is "yaml"/);
    assert.throws(() => docSteps('<!-- test: file ../x -->\n```yaml\na: 1\n```'), /a relative path/);
    assert.throws(() => docSteps('<!-- test: file /etc/x -->\n```yaml\na: 1\n```'), /a relative path/);
    assert.throws(() => docSteps('<!-- test: hidden\nls\n'), /not closed/);
    assert.throws(() => docSteps('```sh\nls\n'), /not closed/);
  });

  it('runs the skipped blocks a caller accepts by their reason', () => {
    const md = page('<!-- test: skip: needs the images -->', '```sh', 'podman run x', '```');
    assert.deepEqual(
      docSteps(md, (r) => r.includes('images')),
      [{ kind: 'run', line: 2, code: 'podman run x' }],
    );
    assert.equal(docSteps(md, (r) => r.includes('systemd'))[0]!.kind, 'skip');
  });

  it('keeps longer fences and indented blocks whole', () => {
    const steps = docSteps(page('<!-- test: run -->', '  ````sh', '  echo "```"', '  ````'));
    assert.deepEqual(steps, [{ kind: 'run', line: 2, code: 'echo "```"' }]);
  });

  it('runs as one script: replacements apply, files are written literally, a failure names its block', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mwi-docs-'));
    try {
      const steps = docSteps(
        page(
          '<!-- test: file a.txt -->',
          '```',
          'addr auth.example.com:3025 $HOME `x`',
          'MWI_DOCS_EOF',
          '```',
          '<!-- test: run -->',
          '```sh',
          'V=auth.example.com:3025',
          '```',
          '<!-- test: run -->',
          '```sh',
          'echo "$V" > b.txt',
          'false',
          '```',
        ),
      );
      const script = docScript(steps, { 'auth.example.com:3025': '127.0.0.1:9' });
      const r = spawnSync('bash', ['-c', script], { cwd: dir, encoding: 'utf8' });
      assert.equal(r.status, 1);
      assert.match(r.stderr, /a command failed in the block at line 11/);
      assert.equal(readFileSync(join(dir, 'a.txt'), 'utf8'), 'addr 127.0.0.1:9 $HOME `x`\nMWI_DOCS_EOF\n');
      assert.equal(readFileSync(join(dir, 'b.txt'), 'utf8'), '127.0.0.1:9\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
