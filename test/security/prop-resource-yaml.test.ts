import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { validateResource } from '../../src/api/resources.js';
import { toYaml } from '../../src/cli/tctl/output.js';
import { parseResources } from '../../src/cli/tctl/resources-yaml.js';
import { isMwiError } from '../../src/errors.js';

// The `tctl create -f` path: YAML text -> parseResources (tctl) -> JSON on the wire ->
// validateResource (Auth Service). Hostile or broken input must end in a refusal that names a
// field, never in another exception (a crash, a TypeError, a stack overflow).

const RUNS = Number(process.env.MWI_PROP_RUNS ?? 300);

const VALID: Record<string, string> = {
  role:
    'kind: role\nversion: v7\nmetadata:\n  name: dev\n  labels: { team: a }\nspec:\n' +
    '  options: { max_session_ttl: 8h }\n  allow:\n    logins: [deploy, "{{internal.logins}}"]\n' +
    '    spiffe: [{ path: /svc/web, dns_sans: [web.local] }]\n  deny: { logins: [root] }\n',
  bot:
    'kind: bot\nversion: v1\nmetadata: { name: robot, description: "a bot" }\nspec:\n  roles: [dev]\n' +
    '  traits:\n    - name: logins\n      values: [ci, deploy]\n  max_session_ttl: 12h\n',
  token:
    'kind: token\nversion: v2\nmetadata: { name: gh-deploy, expires: "2030-01-01T00:00:00Z" }\nspec:\n' +
    '  roles: [Bot]\n  join_method: github\n  bot_name: robot\n  github:\n    allow:\n' +
    '      - repository: acme/app\n        ref: refs/heads/main\n',
  lock:
    'kind: lock\nversion: v2\nmetadata: { name: l1 }\nspec:\n  target: { user: bot-robot }\n' +
    '  message: "incident 42"\n  expires: "2030-01-01T00:00:00Z"\n',
};

/** What the property allows: parsed resources, or a refusal naming a field. */
function tctlCreatePath(text: string): void {
  let docs: Record<string, unknown>[];
  try {
    docs = parseResources(text, 'res.yaml');
  } catch (err) {
    assert.ok(
      isMwiError(err, 'BAD_CONFIG') && err.field === 'res.yaml',
      `parse: ${String(err)}\n${(err as Error)?.stack}`,
    );
    return;
  }
  assert.ok(docs.length > 0);
  for (const doc of docs) {
    assert.equal(Object.getPrototypeOf(doc), Object.prototype);
    // what the Auth Service receives: the JSON tctl sends
    const wire = JSON.parse(JSON.stringify(doc)) as unknown;
    try {
      validateResource(wire);
    } catch (err) {
      assert.ok(
        isMwiError(err, 'BAD_REQUEST') && typeof err.field === 'string' && err.field.length > 0,
        `validate: ${String(err)}\n${(err as Error)?.stack}`,
      );
    }
  }
}

/** YAML-ish pieces that reach the parser's corners: anchors, aliases, tags, merges, flow, quoting. */
const piece = fc.constantFrom(
  ': ',
  '- ',
  '\n',
  '\n  ',
  '\n    ',
  '  ',
  '\t',
  '---\n',
  '...\n',
  '? ',
  '&a ',
  '*a',
  '&b [*a, *a, *a]',
  '<<: *a\n',
  '!!binary aGk=',
  '!!set { a }',
  '!!omap [a: 1]',
  '!!int "x"',
  '!!float .nan',
  '.inf',
  '-.inf',
  '!custom x',
  '{',
  '}',
  '[',
  ']',
  '"',
  "'",
  '"\\u0000"',
  '"\\e[31m"',
  '#',
  '|',
  '>-',
  '%YAML 1.1\n---\n',
  '__proto__: { kind: role }',
  'constructor: x',
  'kind: role',
  'kind: bot',
  'kind: token',
  'kind: lock',
  'kind: bot_instance',
  'kind: [role]',
  'metadata: { name: x }',
  'metadata: *a',
  'spec: null',
  'spec: ~',
  'version: 1',
  'name: ""',
  '123456789012345678901234567890',
  '1e400',
  '0x1F',
  '0o17',
  'true',
  'null',
  '2024-01-01',
  'y',
  'NO',
  '\u202e',
  '\uFEFF',
  '\ud800',
);

const mutation = fc.oneof(
  fc.record({ at: fc.nat(), del: fc.nat({ max: 12 }), ins: fc.string({ maxLength: 8, unit: 'grapheme-composite' }) }),
  fc.record({ at: fc.nat(), del: fc.nat({ max: 4 }), ins: piece }),
);

function mutate(text: string, muts: Array<{ at: number; del: number; ins: string }>): string {
  let t = text;
  for (const m of muts) {
    const at = m.at % (t.length + 1);
    t = t.slice(0, at) + m.ins + t.slice(at + m.del);
  }
  return t;
}

// Valid resources, built from their parts.
const name = fc.stringMatching(/^[a-z0-9][a-z0-9._@-]{0,20}$/);
const login = fc.stringMatching(/^[a-z_][a-z0-9_-]{0,15}$/);
const dur = fc.tuple(fc.integer({ min: 1, max: 48 }), fc.constantFrom('h', 'm', 's')).map(([n, u]) => `${n}${u}`);
// free text may hold anything a bot or an admin typed: control and bidi characters included
const text = fc.oneof(fc.string({ maxLength: 30 }), fc.string({ maxLength: 30, unit: 'binary' }));
const time = fc.integer({ min: 0, max: 4_000_000_000_000 }).map((t) => new Date(t).toISOString());
const metadata = fc.record(
  { name, description: text, labels: fc.dictionary(name, text, { maxKeys: 3 }), expires: time },
  { requiredKeys: ['name'] },
);

const role = fc.record({
  kind: fc.constant('role'),
  version: fc.constantFrom('v7', 'v6', 'v5'),
  metadata,
  spec: fc.record({
    options: fc.record({ max_session_ttl: dur }, { requiredKeys: [] }),
    allow: fc.record({
      logins: fc.array(login, { maxLength: 4 }),
      spiffe: fc.array(
        fc.record(
          { path: name.map((n) => `/${n}`), dns_sans: fc.array(name, { maxLength: 2 }) },
          { requiredKeys: ['path'] },
        ),
        { maxLength: 2 },
      ),
    }),
    deny: fc.record({ logins: fc.array(login, { maxLength: 2 }) }),
  }),
});
const bot = fc.record({
  kind: fc.constant('bot'),
  version: fc.constant('v1'),
  metadata,
  spec: fc.record({
    roles: fc.array(name, { minLength: 1, maxLength: 3 }),
    traits: fc.array(fc.record({ name, values: fc.array(text, { maxLength: 3 }) }), { maxLength: 2 }),
  }),
});
const token = fc.record({
  kind: fc.constant('token'),
  version: fc.constant('v2'),
  metadata,
  spec: fc.record({
    roles: fc.constant(['Bot']),
    join_method: fc.constantFrom('token', 'github', 'kubernetes', 'bound_keypair'),
    bot_name: name,
  }),
});
const lock = fc.record({
  kind: fc.constant('lock'),
  version: fc.constant('v2'),
  metadata,
  spec: fc.record(
    {
      target: fc.oneof(
        name.map((n) => ({ user: `bot-${n}` })),
        fc.uuid().map((id) => ({ bot_instance_id: id })),
      ),
      message: text,
      expires: time,
    },
    { requiredKeys: ['target', 'message'] },
  ),
});
const resource = fc.oneof(role, bot, token, lock);

describe('property: resource YAML parsing (tctl create -f)', () => {
  it('property: random text never crashes parsing or validation (only BAD_CONFIG / BAD_REQUEST naming a field)', () => {
    fc.assert(fc.property(fc.string({ maxLength: 200, unit: 'binary' }), tctlCreatePath), { numRuns: RUNS });
    fc.assert(
      fc.property(
        fc.array(piece, { maxLength: 30 }).map((p) => p.join('')),
        tctlCreatePath,
      ),
      { numRuns: RUNS },
    );
  });

  it('property: random mutations of valid role, bot, token and lock files never crash', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...Object.values(VALID)),
        fc.array(mutation, { minLength: 1, maxLength: 6 }),
        (t, m) => tctlCreatePath(mutate(t, m)),
      ),
      { numRuns: RUNS * 2 },
    );
    // several documents in one file: each is checked
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...Object.values(VALID)), { minLength: 2, maxLength: 4 }),
        fc.array(mutation, { maxLength: 3 }),
        (ts, m) => tctlCreatePath(mutate(ts.join('---\n'), m)),
      ),
      { numRuns: RUNS },
    );
  });

  it('property: any JSON value at any field of a valid resource is accepted or refused naming a field', () => {
    const paths = (v: unknown, pre: string[] = []): string[][] =>
      v && typeof v === 'object' ? [pre, ...Object.entries(v).flatMap(([k, x]) => paths(x, [...pre, k]))] : [pre];
    fc.assert(
      fc.property(resource, fc.nat(), fc.jsonValue({ maxDepth: 3 }), fc.boolean(), (r, pick, value, viaYaml) => {
        const all = paths(r).filter((p) => p.length > 0);
        const path = all[pick % all.length]!;
        const copy = structuredClone(r) as Record<string, any>;
        let at = copy;
        for (const k of path.slice(0, -1)) at = at[k];
        at[path.at(-1)!] = value;
        tctlCreatePath(viaYaml ? toYaml(copy) : stringify(copy));
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('property: valid resources round-trip through YAML (the yaml library and what tctl get prints)', () => {
    fc.assert(
      fc.property(fc.array(resource, { minLength: 1, maxLength: 3 }), fc.boolean(), (rs, tctlGet) => {
        const file = rs.map((r) => (tctlGet ? toYaml(r) : stringify(r))).join('---\n');
        // what tctl prints holds no character a terminal acts on (finding 9), yet reads back the same
        // eslint-disable-next-line no-control-regex -- matching control characters is the point
        if (tctlGet) assert.doesNotMatch(file, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/);
        const docs = parseResources(file, 'res.yaml');
        assert.equal(docs.length, rs.length);
        docs.forEach((d, i) => {
          assert.deepEqual(d, JSON.parse(JSON.stringify(rs[i])));
          const checked = validateResource(JSON.parse(JSON.stringify(d)));
          assert.deepEqual(checked, validateResource(rs[i]));
          // and what tctl get would print of it reads back the same
          assert.deepEqual(parseResources(toYaml(checked), 'again.yaml')[0], JSON.parse(JSON.stringify(checked)));
        });
      }),
      { numRuns: RUNS },
    );
  });

  it('property: examples that crashed or slipped through before stay refused by name', () => {
    // a YAML 1.1 timestamp is a Date object, yet a scalar: it was taken for a mapping
    tctlCreatePath('%YAML 1.1\n---\n2024-01-01');
    for (const t of [
      '%YAML 1.1\n---\n2024-01-01',
      'a: &a [*a]\nkind: role\n', // an alias inside itself: a cycle
      '&a [*a, *a]', // not a mapping
      'kind: role\nmetadata: !!binary aGk=\n',
      '%YAML 1.1\n---\nkind: !!set { role }\n',
      'kind: role\nversion: !!float .nan\n',
      '__proto__: { kind: role }\nmetadata: { name: x }\n',
      // alias bomb
      `a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [${'*a,'.repeat(10)}*a]\n` +
        `c: &c [${'*b,'.repeat(10)}*b]\nd: [${'*c,'.repeat(150)}*c]\n`,
    ]) {
      assert.throws(
        () => {
          const docs = parseResources(t, 'res.yaml');
          for (const d of docs) validateResource(JSON.parse(JSON.stringify(d)));
        },
        (e: unknown) => isMwiError(e) && (e.code === 'BAD_CONFIG' || e.code === 'BAD_REQUEST') && Boolean(e.field),
        t,
      );
    }
  });
});
