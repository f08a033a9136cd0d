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

/** Every source file (relative to src/) and the source files it imports, type-only imports included. */
const GRAPH: ReadonlyMap<string, string[]> = new Map(
  files(SRC).map((f) => {
    const imports = [...readFileSync(f, 'utf8').matchAll(/from '(\.[^']+)'/g)];
    return [relative(SRC, f), imports.map((m) => relative(SRC, resolve(dirname(f), m[1]!.replace(/\.js$/, '.ts'))))];
  }),
);

/** Layer of a source file: its top folder under src/ (errors.ts, version.ts count as "base"). */
function layer(rel: string): string {
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
  // the GitHub Action: a caller of the agent like tbot's CLI, bundled alone (no storage, no Auth Service)
  action: ['base', 'util', 'crypto', 'api', 'join', 'agent', 'action'],
};

/** Files reachable from `roots` through imports, each with the chain that reaches it. */
function reach(roots: string[]): Map<string, string[]> {
  const chains = new Map<string, string[]>(roots.map((r) => [r, [r]]));
  const queue = [...roots];
  for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
    for (const to of GRAPH.get(f) ?? []) {
      if (chains.has(to)) continue;
      chains.set(to, [...chains.get(f)!, to]);
      queue.push(to);
    }
  }
  return chains;
}

const ofLayer = (name: string): string[] => [...GRAPH.keys()].filter((f) => layer(f) === name);
/** Join files both halves may use: the catalog of names and each method's wire messages. */
const SHARED = /^join\/(catalog\.ts|[^/]+\/wire\.ts)$/;
/** A half's code: its roots and every join file they need that is not shared. */
function halfCode(root: RegExp): Set<string> {
  const needed = reach([...GRAPH.keys()].filter((f) => root.test(f))).keys();
  return new Set([...needed].filter((f) => f.startsWith('join/') && !SHARED.test(f)));
}
const SERVER_CODE = halfCode(/^join\/(servers\.ts|[^/]+\/server\.ts)$/);
const CLIENT_CODE = halfCode(/^join\/(clients\.ts|[^/]+\/client\.ts)$/);

/** One chain per file of `forbidden` that `from` reaches, however indirectly. */
function reaches(from: string, forbidden: Set<string>): string[] {
  return [...reach(ofLayer(from))].filter(([f]) => forbidden.has(f)).map(([, chain]) => chain.join(' -> '));
}

it('imports point one way (README: the dependency rule)', () => {
  const violations: string[] = [];
  for (const [from, targets] of GRAPH) {
    for (const to of targets) if (!ALLOWED[layer(from)]?.includes(layer(to))) violations.push(`${from} -> ${to}`);
  }
  assert.deepEqual(violations, []);
});

it('the agent reaches no server half of a join method, the Auth Service no client half, by any chain', () => {
  // the sets are computed: make sure they hold what the rule is about
  for (const f of ['join/servers.ts', 'join/jwt/verify.ts', 'join/jwt/jwks.ts']) assert.ok(SERVER_CODE.has(f), f);
  for (const f of ['join/clients.ts', 'join/jwt/client.ts', 'join/client-types.ts']) assert.ok(CLIENT_CODE.has(f), f);
  assert.deepEqual(reaches('agent', SERVER_CODE), []);
  assert.deepEqual(reaches('action', SERVER_CODE), []);
  assert.deepEqual(reaches('auth', CLIENT_CODE), []);
});
