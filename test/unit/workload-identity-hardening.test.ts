import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkResource, type Bot, type Role } from '../../src/api/resources.js';
import { workloadIdentitySchema, type WorkloadIdentity } from '../../src/api/workload-identity-resource.js';
import { jwtSvidRequestSchema } from '../../src/api/workload-identity.js';
import type { AuditEvent, AuditFilter, AuditLog } from '../../src/auth/audit.js';
import { SplitAuditLog } from '../../src/auth/audit-split.js';
import { attributesOf } from '../../src/auth/workload-identity/attributes.js';
import type { WorkloadContext } from '../../src/auth/workload-identity/context.js';
import { grantRefusal, labelsMatch } from '../../src/auth/workload-identity/grants.js';
import { cut } from '../../src/auth/workload-identity/handlers.js';
import { dnsLabelValueProblem, renderIdentity } from '../../src/auth/workload-identity/issue.js';
import {
  MAX_IDENTITIES_PER_REQUEST,
  refusedSummary,
  selectIdentities,
} from '../../src/auth/workload-identity/select.js';
import { fillTemplate } from '../../src/auth/workload-identity/templates.js';
import { isMwiError } from '../../src/errors.js';

// Issue #16's findings on the Auth Service side of workload identity: the per-request cap and the
// bounded audit (M3), DNS SAN values (L1), own keys only (L3), control characters (L5), templates (L6).

const wi = (name: string, spec: Record<string, unknown>, labels: Record<string, string> = {}): WorkloadIdentity =>
  workloadIdentitySchema.parse({ kind: 'workload_identity', metadata: { name, labels }, spec });
const role = (allow: Record<string, unknown>, deny: Record<string, unknown> = {}): Role =>
  checkResource({ kind: 'role', metadata: { name: 'r' }, spec: { allow, deny } }).resource as Role;
const bot: Bot = { kind: 'bot', version: 'v1', metadata: { name: 'robot' }, spec: { roles: ['r'], traits: [] } };
const k8s = (labels: Record<string, string>, namespace = 'prod') =>
  attributesOf(bot, 'i1', undefined, {
    kubernetes: { attested: true, namespace, service_account: 's', pod_name: 'p', pod_uid: 'u', labels },
  });
const contextOf = (list: WorkloadIdentity[]) =>
  ({ identities: { lookup: () => list, fresh: () => Promise.resolve(undefined) } }) as unknown as WorkloadContext;
const many = (n: number, labels: Record<string, string>) =>
  Array.from({ length: n }, (_, i) => wi(`w${String(i).padStart(4, '0')}`, { spiffe: { id: `/w/${i}` } }, labels));

describe('M3: identities per request, and what the audit log keeps', () => {
  it(`more than ${MAX_IDENTITIES_PER_REQUEST} granted identities under one selector: refused naming selector`, async () => {
    const grant = [role({ workload_identity_labels: { '*': '*' } })];
    const attrs = k8s({});
    const ok = await selectIdentities(contextOf(many(32, { a: 'b' })), { labels: { a: ['b'] } }, grant, attrs, 0);
    assert.equal(ok.granted.length, 32);
    await assert.rejects(
      selectIdentities(contextOf(many(33, { a: 'b' })), { labels: { a: ['b'] } }, grant, attrs, 0),
      (e) =>
        isMwiError(e, 'BAD_REQUEST') &&
        e.field === 'selector' &&
        /matches 33 workload identities.*at most 32 are issued per request: select by name/.test(e.message),
    );
  });

  it('a bot granted nothing: the refusal names the first 5 identities and counts the rest', async () => {
    const list = many(1000, { a: 'b' });
    await assert.rejects(selectIdentities(contextOf(list), { labels: { a: ['b'] } }, [], k8s({}), 0), (e) => {
      assert.ok(isMwiError(e, 'ACCESS_DENIED'));
      const detail = String(e.detail);
      assert.equal(detail.match(/no role of the bot/g)?.length, 5);
      assert.match(detail, /^w0000: .*; and 995 more$/);
      assert.ok(detail.length < 2000, `${detail.length}`);
      return true;
    });
    const refused = list.map((w) => ({ name: w.metadata.name, reason: 'x'.repeat(60) }));
    const summary = refusedSummary(refused);
    assert.equal(summary.count, 1000);
    assert.equal(summary.first.length, 5);
    assert.equal(summary.first[0], `w0000: ${'x'.repeat(60)}`);
  });

  it('attribute values, lists and maps are cut for the audit log', () => {
    const labels = Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`k${i}`, 'v'.repeat(253)]));
    const bounded = cut({ kubernetes: { namespace: 'n'.repeat(253), labels } }) as {
      kubernetes: { namespace: string; labels: Record<string, string> };
    };
    assert.equal(bounded.kubernetes.namespace, `${'n'.repeat(128)}…`);
    assert.equal(Object.keys(bounded.kubernetes.labels).length, 16);
    assert.ok(JSON.stringify(bounded).length < 4000);
    assert.deepEqual(cut({ unix: { uid: 5, attested: true } }), { unix: { uid: 5, attested: true } });
  });

  it('refused issuance goes to the refusals log; issued SVIDs stay in the main log', () => {
    const sink = () => {
      const events: AuditEvent[] = [];
      const log: AuditLog = {
        emit: (e) => void events.push(e),
        recent: (_n: number, _f?: AuditFilter) => Promise.resolve([]),
        close: () => Promise.resolve(),
      };
      return { events, log };
    };
    const main = sink();
    const refusals = sink();
    const split = new SplitAuditLog(main.log, refusals.log);
    split.emit({ event: 'workload_identity.x509', success: false });
    split.emit({ event: 'workload_identity.jwt', success: false });
    split.emit({ event: 'workload_identity.x509', success: true });
    assert.deepEqual(
      refusals.events.map((e) => e.event),
      ['workload_identity.x509', 'workload_identity.jwt'],
    );
    assert.deepEqual(
      main.events.map((e) => e.event),
      ['workload_identity.x509'],
    );
  });
});

describe('L1: attribute values in dns_sans', () => {
  const sans = (dns: string[], labels: Record<string, string>) =>
    dns.map((t, i) => fillTemplate(t, k8s(labels), `spec.spiffe.x509.dns_sans[${i}]`, dnsLabelValueProblem));
  it('a templated value is one DNS label: no "*", no "."', () => {
    assert.deepEqual(sans(['{{ workload.kubernetes.labels.app }}.svc.example.com'], { app: 'web-1' }), [
      'web-1.svc.example.com',
    ]);
    for (const hostile of ['*', 'evil.com.x', '127.0.0.1', 'a_b', '-a', ''])
      assert.throws(
        () => sans(['{{ workload.kubernetes.labels.app }}.svc.example.com'], { app: hostile }),
        (e) =>
          isMwiError(e, 'BAD_REQUEST') &&
          e.field === 'spec.spiffe.x509.dns_sans[0]' &&
          /cannot go into a DNS SAN: it must be one DNS label/.test(e.message),
        hostile,
      );
    assert.equal(dnsLabelValueProblem('localhost'), undefined);
  });
});

describe('L3: label selectors read own keys only', () => {
  it('constructor, __proto__, toString match nothing', () => {
    for (const key of ['constructor', '__proto__', 'toString', 'hasOwnProperty'])
      assert.ok(!labelsMatch({ [key]: ['*'] }, { env: 'prod' }), key);
    const sneaky = role({ workload_identity_labels: { constructor: '*' } });
    assert.match(grantRefusal([sneaky], { env: 'prod' })!, /no role of the bot/);
    assert.ok(labelsMatch({ constructor: '*' }, { constructor: 'x' }));
  });
});

describe('L5: control and bidirectional characters', () => {
  const doc = (spiffe: Record<string, unknown>) => ({
    kind: 'workload_identity',
    metadata: { name: 'w' },
    spec: { spiffe },
  });
  it('a hint with them is refused when written, naming the field; an attribute that brings them too', () => {
    for (const hint of ['a\nb', 'a\u001b[31m', 'a\u202eb', 'a\u0000'])
      assert.throws(
        () => checkResource(doc({ id: '/a', hint })),
        (e) => isMwiError(e, 'BAD_REQUEST') && e.field === 'spec.spiffe.hint' && /control characters/.test(e.message),
        JSON.stringify(hint),
      );
    const w = wi('w', { spiffe: { id: '/a', hint: 'for {{ workload.kubernetes.labels.app }}' } });
    assert.equal(renderIdentity(w, k8s({ app: 'web' }), 'td').hint, 'for web');
    assert.throws(
      () => renderIdentity(w, k8s({ app: 'web\u202e' }), 'td'),
      (e) => isMwiError(e, 'BAD_REQUEST') && /bidirectional/.test(e.message),
    );
  });
  it('an audience with them is refused naming audiences[i]', () => {
    for (const aud of ['a\u0000b', 'x\ny', '\u202eevil', 'a\u2066'])
      assert.deepEqual(
        jwtSvidRequestSchema.safeParse({ selector: { name: 'w' }, audiences: ['ok', aud] }).error?.issues[0]?.path,
        ['audiences', 1],
        JSON.stringify(aud),
      );
    assert.ok(jwtSvidRequestSchema.safeParse({ selector: { name: 'w' }, audiences: ['https://é.example'] }).success);
  });
});

describe('L6: templates refused when the resource is written', () => {
  const create = (spiffe: Record<string, unknown>) =>
    checkResource({ kind: 'workload_identity', metadata: { name: 'w' }, spec: { spiffe } });
  it('two templates side by side, and stray braces, naming the field', () => {
    for (const [spiffe, field, why] of [
      [{ id: '/{{ user.bot_name }}{{ workload.unix.uid }}' }, 'spec.spiffe.id', /side by side/],
      [{ id: '/a/{{user.bot_name}} {{workload.unix.uid}}' }, 'spec.spiffe.id', /side by side/],
      [{ id: '/{{{ user.bot_name }}}' }, 'spec.spiffe.id', /stray/],
      [{ id: '/a/{ user.bot_name }' }, 'spec.spiffe.id', /stray/],
      [{ id: '/a', x509: { dns_sans: ['{{ user.bot_name }}{{ user.name }}.x'] } }, 'spec.spiffe.x509.dns_sans[0]',
        /side by side/], // prettier-ignore
    ] as const)
      assert.throws(
        () => create(spiffe),
        (e) => isMwiError(e, 'BAD_REQUEST') && e.field === field && why.test(e.message),
        JSON.stringify(spiffe),
      );
    create({ id: '/{{ user.bot_name }}-{{ workload.unix.uid }}/{{ user.name }}' });
  });
});
