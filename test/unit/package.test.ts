import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { it } from 'node:test';

// compiled to dist/test/unit: the package root is three levels up
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const pkg = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as {
  bin: Record<string, string>;
  exports: Record<string, Record<string, string>>;
};

it('every bin and exports target of package.json exists after the build', () => {
  const targets = [...Object.values(pkg.bin), ...Object.values(pkg.exports).flatMap((e) => Object.values(e))];
  assert.ok(targets.length >= 5);
  assert.deepEqual(
    targets.filter((t) => !existsSync(resolve(ROOT, t))),
    [],
  );
});

it('the package entry gives a program what tctl uses: AdminClient, ApiClient, the resource schemas, MwiError', async () => {
  const entry = (await import(pathToFileURL(resolve(ROOT, pkg.exports['.']!.default!)).href)) as Record<
    string,
    unknown
  >;
  for (const name of ['AdminClient', 'ApiClient', 'discoverCA', 'MwiError', 'isMwiError', 'VERSION', 'PATHS']) {
    assert.ok(entry[name] !== undefined, name);
  }
});

it('LICENSE is the license package.json names', () => {
  const { license } = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as { license: string };
  assert.equal(license, 'Apache-2.0');
  const text = readFileSync(resolve(ROOT, 'LICENSE'), 'utf8');
  assert.match(text, /Apache License\s+Version 2\.0, January 2004/);
  assert.match(text, /END OF TERMS AND CONDITIONS/);
});

it('npm pack ships the built programs and nothing from a working tree (no data dir, token, tests or sources)', () => {
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const files = (JSON.parse(r.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
  const allowed = (p: string) => p.startsWith('dist/src/') || ['package.json', 'README.md', 'LICENSE'].includes(p);
  assert.deepEqual(
    files.filter((p) => !allowed(p)),
    [],
  );
  assert.ok(files.includes('dist/src/cli/tbot.js') && files.includes('dist/src/storage/checkpointer.js'));
});
