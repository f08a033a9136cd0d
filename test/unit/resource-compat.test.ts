import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { checkResource } from '../../src/api/resources.js';
import { roleFieldNotes } from '../../src/api/role-fields.js';
import { printNote } from '../../src/cli/tctl/output.js';
import { isMwiError } from '../../src/errors.js';
import { testContext } from '../helpers/auth-context.js';

// Resources as Teleport's `tctl get` writes them: what only Teleport has is dropped with a note,
// role fields mwi does not read are noted, or refused when mwi cannot honour them.

const role = (spec: Record<string, unknown>, version = 'v8') => ({
  kind: 'role',
  version,
  metadata: { name: 'r' },
  spec,
});
const notesOf = (spec: Record<string, unknown>) => checkResource(role(spec)).notes;
const refusedAt = (spec: Record<string, unknown>, field: string, why: RegExp) =>
  assert.throws(
    () => checkResource(role(spec)),
    (e) => isMwiError(e, 'BAD_REQUEST') && e.field === field && why.test(e.message),
    `${JSON.stringify(spec)} was accepted`,
  );

describe('the envelope of Teleport exports', () => {
  it('metadata.revision, metadata.namespace and sub_kind are dropped with a note; an empty sub_kind silently', () => {
    const resources = [
      role({}),
      { kind: 'bot', metadata: { name: 'b' }, spec: { roles: ['r'] } },
      { kind: 'token', metadata: { name: 't' }, spec: { join_method: 'github', bot_name: 'b' } },
      { kind: 'lock', metadata: { name: 'l' }, spec: { target: { user: 'bot-b' } } },
    ];
    for (const r of resources) {
      const teleport = { ...r, sub_kind: 'x', metadata: { ...r.metadata, revision: 'abc-123', namespace: 'default' } };
      const { resource, notes } = checkResource(teleport);
      assert.deepEqual(notes, [
        'metadata.revision is not used by mwi (ignored)',
        'metadata.namespace is not used by mwi (ignored)',
        'sub_kind is not used by mwi (ignored)',
      ]);
      assert.deepEqual(resource.metadata, r.metadata);
      assert.equal('sub_kind' in resource, false);
      assert.deepEqual(checkResource({ ...r, sub_kind: '' }).notes, []);
    }
    for (const bad of [{ revision: 42 }, { namespace: [] }])
      assert.throws(
        () => checkResource(role({}, 'v8')) && checkResource({ ...role({}), metadata: { name: 'r', ...bad } }),
      );
    assert.throws(
      () => checkResource({ ...role({}), sub_kind: 7 }),
      (e) => isMwiError(e, 'BAD_REQUEST') && e.field === 'sub_kind',
    );
  });

  it("a status (a bot's user_name and role_name, a token's) is noted as the Auth Service's own", () => {
    const bot = {
      kind: 'bot',
      metadata: { name: 'b' },
      spec: { roles: ['r'] },
      status: { user_name: 'bot-b', role_name: 'bot-b' },
    };
    assert.deepEqual(checkResource(bot).notes, ['status is written by the Auth Service (ignored)']);
    assert.deepEqual(checkResource({ ...bot, status: {} }).notes, []);
    const token = {
      kind: 'token',
      metadata: { name: 't' },
      spec: { join_method: 'bound_keypair', bot_name: 'b' },
      status: { bound_keypair: { registration_secret: 'x' } },
    };
    assert.deepEqual(checkResource(token).notes, ['status is written by the Auth Service (ignored)']);
  });

  it('role versions v5 to v8 load; another is refused naming version', () => {
    for (const v of ['v5', 'v6', 'v7', 'v8'])
      assert.equal(checkResource(role({ allow: { logins: ['x'] } }, v)).resource.version, v);
    assert.throws(
      () => checkResource(role({}, 'v9')),
      (e) => isMwiError(e, 'BAD_REQUEST') && e.field === 'version' && /a v9 role's are not read/.test(e.message),
    );
  });
});

describe('role fields mwi does not read', () => {
  it("each part's ignored fields in one note; empty ones and what mwi does anyway need none", () => {
    assert.deepEqual(notesOf({ allow: { kubernetes_labels: { env: 'staging' } } }), [
      'spec.allow.kubernetes_labels is not used by mwi (ignored)',
    ]);
    assert.deepEqual(
      notesOf({
        options: {
          cert_format: 'standard',
          max_session_ttl: '8h',
          pin_source_ip: false,
          create_db_user: false,
          idp: { saml: { enabled: true } },
        },
        allow: {
          logins: ['deploy'],
          node_labels: { '*': '*' },
          rules: [{ resources: ['event'], verbs: ['list'] }],
          db_labels: {},
          spiffe: [],
        },
        deny: { logins: ['root'], kubernetes_groups: ['admins'] },
      }),
      [
        'spec.options.cert_format, spec.options.idp are not used by mwi (ignored)',
        'spec.allow.rules is not used by mwi (ignored)',
        'spec.deny.kubernetes_groups is not used by mwi (ignored)',
      ],
    );
    assert.deepEqual(notesOf({ allow: { logins: ['x'], node_labels: { '*': ['*'] } } }), []);
    assert.deepEqual(notesOf({ allow: { spiffe: [{ path: '/svc' }] } }), [
      'spec.allow.spiffe is not used by mwi (ignored)',
    ]);
    // node labels on a role without logins limit nothing mwi grants
    assert.deepEqual(notesOf({ allow: { node_labels: { env: 'prod' } } }), [
      'spec.allow.node_labels is not used by mwi (ignored)',
    ]);
    // device trust that exempts bots, per-session MFA off: what mwi does
    assert.deepEqual(
      notesOf({ options: { device_trust_mode: 'required-for-humans', require_session_mfa: 'off' } }),
      [],
    );
  });

  it('what would let an mwi certificate do more than the role says is refused, naming the field and why', () => {
    refusedAt(
      { allow: { logins: ['deploy'], node_labels: { env: 'staging' } } },
      'spec.allow.node_labels',
      /every host that trusts the user CA/,
    );
    refusedAt(
      { allow: { logins: ['deploy'], node_labels: { '*': '*', env: 'x' } } },
      'spec.allow.node_labels',
      /cannot limit/,
    );
    refusedAt(
      { allow: { logins: ['deploy'], node_labels_expression: 'labels.env == "prod"' } },
      'spec.allow.node_labels_expression',
      /cannot limit/,
    );
    refusedAt({ deny: { node_labels: { '*': '*' } } }, 'spec.deny.node_labels', /cannot limit/);
    refusedAt({ deny: { node_labels_expression: 'true' } }, 'spec.deny.node_labels_expression', /cannot limit/);
    refusedAt({ options: { pin_source_ip: true } }, 'spec.options.pin_source_ip', /source-address/);
    for (const mfa of [true, 'hardware_key', 'session'])
      refusedAt({ options: { require_session_mfa: mfa } }, 'spec.options.require_session_mfa', /MFA/);
    refusedAt({ options: { device_trust_mode: 'required' } }, 'spec.options.device_trust_mode', /trusted device/);
    refusedAt(
      { options: { cert_extensions: [{ type: 'ssh', mode: 'extension', name: 'login@github.com', value: 'x' }] } },
      'spec.options.cert_extensions',
      /does not implement/,
    );
  });

  it("hostile field names are noted like any other, never taken for Object.prototype's; __proto__ is refused", () => {
    const spec = JSON.parse('{"options":{"constructor":1,"toString":"x"},"allow":{"hasOwnProperty":1}}');
    assert.deepEqual(notesOf(spec), [
      'spec.options.constructor, spec.options.toString are not used by mwi (ignored)',
      'spec.allow.hasOwnProperty is not used by mwi (ignored)',
    ]);
    assert.deepEqual(roleFieldNotes({ options: {}, allow: {}, deny: {} }), []);
    // passed through by assignment, it would set the object's prototype, not a field
    const proto = JSON.parse('{"options":{"__proto__":{"forward_agent":true}}}');
    refusedAt(proto, 'spec.options.__proto__', /a field named __proto__ is not allowed/);
    const token =
      '{"kind":"token","metadata":{"name":"t"},"spec":{"join_method":"github","bot_name":"b",' +
      '"github":{"allow":[{"__proto__":{}}]}}}';
    assert.throws(
      () => checkResource(JSON.parse(token)),
      (e) => isMwiError(e, 'BAD_REQUEST') && e.field === 'spec.github.allow[0].__proto__',
    );
  });
});

describe('admin create: notes in the reply; locks keep who and when', () => {
  let t: Awaited<ReturnType<typeof testContext>>;
  before(async () => {
    t = await testContext();
  });

  it('notes name the resource: `role "x": ...`', async () => {
    const reply = await t.admin.create(
      {
        kind: 'role',
        version: 'v8',
        metadata: { name: 'x', revision: 'r1' },
        spec: { allow: { kubernetes_labels: { '*': '*' } } },
      },
      false,
      'admin',
    );
    assert.deepEqual(reply.notes, [
      'role "x": metadata.revision is not used by mwi (ignored)',
      'role "x": spec.allow.kubernetes_labels is not used by mwi (ignored)',
    ]);
    // kept as written (tctl get shows it), the revision not
    const stored = (await t.admin.get('role', 'x')) as any;
    assert.deepEqual(stored.spec.allow.kubernetes_labels, { '*': '*' });
    assert.equal(stored.metadata.revision, undefined);
    assert.equal(
      (await t.admin.create({ kind: 'role', metadata: { name: 'y' }, spec: {} }, false, 'admin')).notes,
      undefined,
    );
  });

  it('a lock with two targets is refused saying an mwi lock has one (one lock per target)', () => {
    assert.throws(
      () =>
        checkResource({
          kind: 'lock',
          metadata: { name: 'l' },
          spec: { target: { user: 'bot-b', join_token: 'gh' } },
        }),
      (e) => isMwiError(e, 'BAD_REQUEST') && /an mwi lock has one target \(Teleport's may combine/.test(e.message),
    );
  });

  it("a lock with one of Teleport's other targets is refused saying which targets mwi has", () => {
    for (const target of ['role', 'login', 'server_id', 'mfa_device', 'device', 'windows_desktop', 'access_request'])
      assert.throws(
        () => checkResource({ kind: 'lock', metadata: { name: 'l' }, spec: { target: { [target]: 'x' } } }),
        (e) =>
          isMwiError(e, 'BAD_REQUEST') &&
          e.field === `spec.target.${target}` &&
          /an mwi lock targets a bot \(user: bot-NAME\), a bot instance/.test(e.message),
      );
  });

  it("a lock keeps created_at and created_by when given (Teleport's names); else they are the Auth Service's", async () => {
    const lock = (name: string, spec: Record<string, unknown>) =>
      t.admin.create(
        { kind: 'lock', metadata: { name }, spec: { target: { user: 'bot-b' }, ...spec } },
        false,
        'alice',
      );
    await lock('given', { created_at: '2025-06-01T10:00:00Z', created_by: 'bob' });
    await lock('mwi-before', { created: '2024-01-01T00:00:00.000Z' });
    await lock('fresh', {});
    const spec = async (name: string) => ((await t.admin.get('lock', name)) as any).spec;
    assert.deepEqual(await spec('given'), {
      target: { user: 'bot-b' },
      message: '',
      created_by: 'bob',
      created_at: '2025-06-01T10:00:00Z',
    });
    assert.equal((await spec('mwi-before')).created_at, '2024-01-01T00:00:00.000Z');
    assert.equal((await spec('mwi-before')).created, undefined);
    assert.equal((await spec('fresh')).created_by, 'alice');
    assert.equal((await spec('fresh')).created_at, new Date(t.clock.now()).toISOString());
    await assert.rejects(
      lock('bad', { created_at: 'yesterday' }),
      (e) => isMwiError(e, 'BAD_REQUEST') && e.field === 'spec.created_at',
    );
  });
});

it("tctl prints a note on stderr with control characters escaped (a field name is the user's text)", () => {
  const lines: string[] = [];
  // eslint-disable-next-line @typescript-eslint/unbound-method -- saved only to be put back on process.stderr
  const write = process.stderr.write;
  process.stderr.write = (chunk: string) => (lines.push(String(chunk)), true);
  try {
    printNote('role "r": spec.allow.\u001b[31mx\u202e is not used by mwi (ignored)');
  } finally {
    process.stderr.write = write;
  }
  assert.deepEqual(lines, ['note: role "r": spec.allow.\\u001b[31mx\\u202e is not used by mwi (ignored)\n']);
});
