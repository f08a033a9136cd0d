import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkResource, type Bot, type BotInstance, type Role } from '../../src/api/resources.js';
import { workloadIdentitySchema, type WorkloadIdentity } from '../../src/api/workload-identity-resource.js';
import { x509SvidRequestSchema } from '../../src/api/workload-identity.js';
import { attributesOf } from '../../src/auth/workload-identity/attributes.js';
import { grantRefusal, labelsMatch } from '../../src/auth/workload-identity/grants.js';
import { renderIdentity, svidTtlMs } from '../../src/auth/workload-identity/issue.js';
import { rulesFailure } from '../../src/auth/workload-identity/rules.js';
import { spiffeId, spiffePathProblem } from '../../src/auth/workload-identity/spiffe-id.js';
import { fillTemplate } from '../../src/auth/workload-identity/templates.js';
import { isMwiError } from '../../src/errors.js';

const wi = (spec: Record<string, unknown>, labels: Record<string, string> = {}): WorkloadIdentity =>
  workloadIdentitySchema.parse({ kind: 'workload_identity', metadata: { name: 'w', labels }, spec });
const role = (allow: Record<string, unknown>, deny: Record<string, unknown> = {}): Role =>
  checkResource({ kind: 'role', metadata: { name: 'r' }, spec: { allow, deny } }).resource as Role;
const bot: Bot = {
  kind: 'bot',
  version: 'v1',
  metadata: { name: 'robot', labels: { env: 'prod' } },
  spec: { roles: ['r'], traits: [{ name: 'logins', values: ['a', 'b'] }] },
};

describe('SPIFFE IDs (SPIFFE-ID specification section 2)', () => {
  it('accepts paths of segments of letters, digits, ".", "-", "_"; refuses the rest', () => {
    assert.equal(spiffePathProblem('/ns/prod/sa/web_1.v-2'), undefined);
    for (const bad of [
      '',
      'x',
      '/',
      '/a/',
      '//a',
      '/a//b',
      '/a/./b',
      '/a/../b',
      '/a%2fb',
      '/a b',
      '/é',
      '/a?b',
      '/a#b',
    ])
      assert.ok(spiffePathProblem(bad), bad);
    assert.equal(spiffeId('example.org', '/a'), 'spiffe://example.org/a');
    assert.throws(() => spiffeId('example.org', `/${'a'.repeat(2100)}`), /longer than 2048 bytes/);
    assert.throws(
      () => spiffeId('Example.Org', '/a'),
      (e) => isMwiError(e, 'INTERNAL'),
    );
  });

  it('an attribute cannot leave its segment: "/", "%", "..", "{{" in a value are refused, naming the attribute', () => {
    const w = wi({ spiffe: { id: '/k8s/{{ workload.kubernetes.namespace }}/sa' } });
    const attrs = (namespace: string) =>
      attributesOf(bot, 'i1', undefined, {
        kubernetes: { attested: true, namespace, service_account: 's', pod_name: 'p', pod_uid: 'u' },
      });
    assert.equal(renderIdentity(w, attrs('prod'), 'td').spiffeId, 'spiffe://td/k8s/prod/sa');
    for (const hostile of ['a/b', '..', '.', '%2e%2e', '{{ user.name }}', 'a b', ''])
      assert.throws(
        () => renderIdentity(w, attrs(hostile), 'td'),
        (e) =>
          isMwiError(e, 'BAD_REQUEST') &&
          /the value of workload\.kubernetes\.namespace cannot go into a SPIFFE ID path/.test(e.message),
        hostile,
      );
  });
});

describe('templates', () => {
  const attrs = attributesOf(bot, 'inst-1', undefined, {
    unix: { attested: true, pid: 42, uid: 1000, gid: 1000, binary_path: '/usr/bin/x' },
  });
  it("fills Teleport's attribute names once, and refuses one the request lacks, naming it", () => {
    assert.equal(
      fillTemplate(
        '{{ user.name }}/{{workload.unix.uid}}/{{ user.bot_instance_id }}/{{ user.labels.env }}',
        attrs,
        'f',
      ),
      'bot-robot/1000/inst-1/prod',
    );
    assert.equal(fillTemplate('{{ user.traits.logins }}', attrs, 'f'), 'a,b');
    assert.throws(
      () => fillTemplate('/{{ workload.kubernetes.namespace }}', attrs, 'spec.spiffe.id'),
      (e) =>
        isMwiError(e, 'ACCESS_DENIED') &&
        e.message ===
          'spec.spiffe.id: the template in spec.spiffe.id names workload.kubernetes.namespace, ' +
            'which this request does not have',
    );
  });
  it('join attributes: a Kubernetes service account is join.kubernetes.service_account.namespace and .name', () => {
    const instance = {
      status: {
        initial_authentication: { join_method: 'kubernetes', metadata: { service_account: 'ns1:builder', sub: 'x' } },
      },
    } as unknown as BotInstance;
    const a = attributesOf(bot, 'i', instance, undefined);
    assert.equal(a.get('join.kubernetes.service_account.namespace'), 'ns1');
    assert.equal(a.get('join.kubernetes.service_account.name'), 'builder');
    assert.equal(a.get('join.kubernetes.sub'), 'x');
  });
  it('a resource with a malformed template is refused when written, naming the field', () => {
    for (const [id, field] of [
      ['/a/{{ workload.unix.uid', 'spec.spiffe.id'],
      ['/a/{{ env.HOME }}', 'spec.spiffe.id'],
      ['a', 'spec.spiffe.id'],
    ] as const)
      assert.throws(
        () => checkResource({ kind: 'workload_identity', metadata: { name: 'w' }, spec: { spiffe: { id } } }),
        (e) => isMwiError(e, 'BAD_REQUEST') && e.field === field,
        id,
      );
    assert.throws(
      () =>
        checkResource({
          kind: 'workload_identity',
          metadata: { name: 'w' },
          spec: {
            spiffe: { id: '/a' },
            rules: { allow: [{ conditions: [{ attribute: 'user.name', eq: { value: 'a' }, in: { values: [] } }] }] },
          },
        }),
      (e) => isMwiError(e, 'BAD_REQUEST') && /exactly one of eq, not_eq, in or not_in/.test(e.message),
    );
  });
});

describe('rules (any rule passes when all its conditions do; no rules pass)', () => {
  const attrs = attributesOf(bot, 'i', undefined, { unix: { attested: true, pid: 1, uid: 1000, gid: 50 } });
  const cond = (c: Record<string, unknown>) => wi({ spiffe: { id: '/a' }, rules: { allow: [{ conditions: [c] }] } });
  it('eq, not_eq, in, not_in, and a missing attribute, each saying why', () => {
    assert.equal(rulesFailure(wi({ spiffe: { id: '/a' } }), attrs), undefined);
    assert.equal(rulesFailure(cond({ attribute: 'workload.unix.uid', eq: { value: '1000' } }), attrs), undefined);
    assert.equal(
      rulesFailure(cond({ attribute: 'workload.unix.uid', eq: { value: '0' } }), attrs),
      'rules.allow[0].conditions[0]: workload.unix.uid is "1000", not "0"',
    );
    assert.match(
      rulesFailure(cond({ attribute: 'workload.unix.gid', not_eq: { value: '50' } }), attrs)!,
      /gid is "50"/,
    );
    assert.equal(rulesFailure(cond({ attribute: 'workload.unix.gid', in: { values: ['1', '50'] } }), attrs), undefined);
    assert.match(rulesFailure(cond({ attribute: 'workload.unix.gid', not_in: { values: ['50'] } }), attrs)!, /not_in/);
    assert.match(
      rulesFailure(cond({ attribute: 'workload.kubernetes.namespace', eq: { value: 'x' } }), attrs)!,
      /workload\.kubernetes\.namespace is not set/,
    );
    const two = wi({
      spiffe: { id: '/a' },
      rules: {
        allow: [
          { conditions: [{ attribute: 'user.bot_name', eq: { value: 'other' } }] },
          { conditions: [{ attribute: 'user.bot_name', eq: { value: 'robot' } }] },
        ],
      },
    });
    assert.equal(rulesFailure(two, attrs), undefined);
  });
});

describe("roles' workload_identity_labels", () => {
  it("Teleport's label matching: every key; '*' values and '*': '*'", () => {
    assert.ok(labelsMatch({ env: ['dev', 'prod'] }, { env: 'prod', team: 'x' }));
    assert.ok(labelsMatch({ env: '*' }, { env: 'anything' }));
    assert.ok(!labelsMatch({ env: '*' }, { team: 'x' }));
    assert.ok(labelsMatch({ '*': '*' }, {}));
    assert.ok(!labelsMatch({ env: 'prod', team: 'a' }, { env: 'prod', team: 'b' }));
    assert.ok(!labelsMatch({}, { env: 'prod' }));
  });
  it('allow grants, deny wins; a role without the field grants nothing', () => {
    assert.equal(grantRefusal([role({ workload_identity_labels: { env: 'prod' } })], { env: 'prod' }), undefined);
    assert.match(grantRefusal([role({ logins: ['x'] })], { env: 'prod' })!, /no role of the bot \(r\) grants/);
    assert.match(
      grantRefusal([role({ workload_identity_labels: { '*': '*' } }, { workload_identity_labels: { env: 'prod' } })], {
        env: 'prod',
      })!,
      /role r denies it/,
    );
  });
  it('the field is read by mwi: no "not used" note', () => {
    const { notes } = checkResource({
      kind: 'role',
      metadata: { name: 'r' },
      spec: { allow: { workload_identity_labels: { a: 'b' } } },
    });
    assert.deepEqual(notes, []);
  });
});

describe('requests and TTLs', () => {
  it('TTL: default 1h; capped by the role, the identity maximum_ttl and 24h; at least 1s', () => {
    assert.equal(svidTtlMs(undefined, 86_400_000, undefined), 3_600_000);
    assert.equal(svidTtlMs('48h', 86_400_000, undefined), 86_400_000);
    assert.equal(svidTtlMs('2h', 1_800_000, undefined), 1_800_000);
    assert.equal(svidTtlMs('2h', 86_400_000, '10m'), 600_000);
    assert.equal(svidTtlMs('1ms', 86_400_000, undefined), 1000);
  });
  it('hostile request bodies are refused naming the field', () => {
    const base = { selector: { name: 'w' }, public_key: 'x' };
    const refused = (body: unknown, path: string) => {
      const r = x509SvidRequestSchema.safeParse(body);
      assert.ok(!r.success, path);
      assert.equal(r.error.issues[0]!.path.join('.'), path);
    };
    refused({ ...base, selector: { name: 'w', labels: { a: ['b'] } } }, 'selector');
    refused({ ...base, selector: {} }, 'selector');
    refused({ ...base, attributes: { unix: { attested: true, pid: 1, uid: -1, gid: 0 } } }, 'attributes.unix.uid');
    refused(
      { ...base, attributes: { unix: { attested: true, pid: 1, uid: 1, gid: 0, binary_path: 'x'.repeat(5000) } } },
      'attributes.unix.binary_path',
    );
    refused(
      { ...base, attributes: { unix: { attested: true, pid: 1, uid: 1, gid: 0, binary_hash: 'zz' } } },
      'attributes.unix.binary_hash',
    );
    refused({ ...base, attributes: { docker: {} } }, 'attributes');
    refused({ ...base, ttl: 'forever' }, 'ttl');
  });
});

it('a deny.workload_identity_labels_expression is refused (ignored, it would grant what it denies)', () => {
  assert.throws(
    () =>
      checkResource({
        kind: 'role',
        metadata: { name: 'r' },
        spec: { deny: { workload_identity_labels_expression: 'labels["env"] == "prod"' } },
      }),
    (e) => isMwiError(e, 'BAD_REQUEST') && e.field === 'spec.deny.workload_identity_labels_expression',
  );
});

it("tbot start workload-identity-x509 (Teleport's mode) points to the tbot.yaml output", async () => {
  const { startMode } = await import('../../src/cli/tbot-modes.js');
  assert.throws(
    () => startMode('start', ['workload-identity-jwt']),
    (e) =>
      isMwiError(e, 'BAD_CONFIG') &&
      /write it in tbot\.yaml \(outputs: \[\{type: workload-identity-jwt/.test(e.message),
  );
});
