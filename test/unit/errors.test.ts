import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';
import { ERROR_CODES, exitCodeFor, HTTP_STATUS, MwiError } from '../../src/errors.js';

const DOC = resolve(dirname(fileURLToPath(import.meta.url)), '../../../docs/errors.md');

it('docs/errors.md lists exactly the real error codes, with their HTTP status', () => {
  const rows = [...readFileSync(DOC, 'utf8').matchAll(/^\| `([A-Z_]+)` \| (\d+) \|/gm)].map(
    (m) => [m[1]!, Number(m[2])] as const,
  );
  assert.deepEqual(rows.map((r) => r[0]).sort(), Object.keys(ERROR_CODES).sort());
  for (const [code, status] of rows) assert.equal(status, HTTP_STATUS[code as keyof typeof HTTP_STATUS], code);
});

it('user errors exit 2, runtime failures 1; messages name the field', () => {
  assert.equal(exitCodeFor(new MwiError('BAD_CONFIG', 'x')), 2);
  assert.equal(exitCodeFor(new MwiError('JOIN_DENIED', 'x')), 1);
  assert.equal(exitCodeFor(new Error('x')), 1);
  assert.equal(new MwiError('BAD_CONFIG', 'expected v2', { field: 'version' }).message, 'version: expected v2');
});
