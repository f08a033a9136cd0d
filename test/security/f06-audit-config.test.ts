import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { loadAuthConfig } from '../../src/auth/config.js';
import { isMwiError } from '../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'mwi-f06-audit-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function load(yaml: string) {
  const file = join(dir, 'mwi.yaml');
  writeFileSync(file, yaml);
  return loadAuthConfig(file, {});
}

it('finding 6: mwi.yaml audit.max_size and audit.max_files bound the audit log (defaults 100MB, 10)', () => {
  assert.deepEqual(load('cluster_name: c\n').audit, { maxSize: 100 * 1024 * 1024, maxFiles: 10 });
  assert.deepEqual(load('audit:\n  max_size: 20MB\n  max_files: 3\n').audit, {
    maxSize: 20 * 1024 * 1024,
    maxFiles: 3,
  });
  assert.deepEqual(load('audit:\n  max_size: 1048576\n').audit, { maxSize: 1048576, maxFiles: 10 });
  for (const [yaml, field] of [
    ['audit:\n  max_size: lots\n', 'audit.max_size'],
    ['audit:\n  max_size: 1KB\n', 'audit.max_size'],
    ['audit:\n  max_files: 0\n', 'audit.max_files'],
    ['audit:\n  max_files: 2.5\n', 'audit.max_files'],
    ['audit:\n  rotate: daily\n', 'audit.rotate'],
  ] as const) {
    assert.throws(
      () => load(yaml),
      (e) => isMwiError(e, 'BAD_CONFIG') && String(e.field).endsWith(field),
      yaml,
    );
  }
});
