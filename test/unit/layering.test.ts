import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { it } from 'node:test';

// compiled to dist/test/unit: the sources are at ../../../src
const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../../src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Layer of a source file: its top folder under src/ (errors.ts, version.ts count as "base"). */
function layer(path: string): string {
  const rel = relative(SRC, path);
  return rel.includes('/') ? rel.split('/')[0]! : 'base';
}

const ALLOWED: Record<string, string[]> = {
  base: ['base'],
  util: ['base', 'util'],
  crypto: ['base', 'util', 'crypto'],
  api: ['base', 'util', 'crypto', 'api'],
  storage: ['base', 'util', 'storage'],
  join: ['base', 'util', 'crypto', 'api', 'join'],
  auth: ['base', 'util', 'crypto', 'api', 'storage', 'join', 'auth'],
  agent: ['base', 'util', 'crypto', 'api', 'join', 'agent'],
  cli: ['base', 'util', 'crypto', 'api', 'storage', 'join', 'auth', 'agent', 'cli'],
};

it('imports point one way (README: the dependency rule)', () => {
  const violations: string[] = [];
  for (const f of files(SRC)) {
    const from = layer(f);
    for (const m of readFileSync(f, 'utf8').matchAll(/from '(\.[^']+)'/g)) {
      const target = resolve(dirname(f), m[1]!.replace(/\.js$/, '.ts'));
      const to = layer(target);
      const rel = relative(SRC, target);
      if (!ALLOWED[from]?.includes(to)) violations.push(`${relative(SRC, f)} -> ${rel}`);
      // the agent holds only client halves of join methods, the Auth Service only server halves
      if (from === 'agent' && (/^join\/servers\.ts$/.test(rel) || /^join\/[^/]+\/server\.ts$/.test(rel))) violations.push(`${relative(SRC, f)} -> ${rel}`);
      if (from === 'auth' && (/^join\/clients\.ts$/.test(rel) || /^join\/[^/]+\/client\.ts$/.test(rel))) violations.push(`${relative(SRC, f)} -> ${rel}`);
    }
  }
  assert.deepEqual(violations, []);
});
