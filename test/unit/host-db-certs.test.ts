import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateTbotConfig } from '../../src/agent/config.js';
import { renderDatabaseFiles } from '../../src/agent/outputs/database.js';
import { renderSshHostFiles, SSH_HOST_FILES } from '../../src/agent/outputs/ssh-host.js';
import { hostPrincipalShapeProblem, parseHostCertWhere, whereAllows } from '../../src/api/host-cert-rules.js';
import { checkResource, roleSchema, type Bot, type Role } from '../../src/api/resources.js';
import { checkDatabaseAccess } from '../../src/auth/db-certs.js';
import { checkHostPrincipals } from '../../src/auth/host-certs.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { isMwiError } from '../../src/errors.js';

// The ssh_host and database outputs: which host principals and database users a role grants,
// how a role that mwi cannot honour is refused, and tbot.yaml's two output types.

const roleDoc = (spec: Record<string, unknown>) => ({ kind: 'role', version: 'v8', metadata: { name: 'r' }, spec });
const role = (spec: Record<string, unknown>): Role => roleSchema.parse(roleDoc(spec));
const hostRule = (where?: string) => ({ resources: ['host_cert'], verbs: ['create'], ...(where ? { where } : {}) });
const bot = (traits: Bot['spec']['traits'] = []): Bot => ({
  kind: 'bot',
  version: 'v1',
  metadata: { name: 'b' },
  spec: { roles: ['r'], traits },
});
const refused = (fn: () => unknown, code: 'BAD_REQUEST' | 'BAD_CONFIG', field: string, why: RegExp) =>
  assert.throws(fn, (e) => isMwiError(e, code) && e.field === field && why.test(e.message));

describe('host_cert rules (Teleport: rules on host_cert, create, where over host_cert.principals)', () => {
  it('reads is_subset, all_equal, all_end_with and &&; anything else is unreadable', () => {
    const w = parseHostCertWhere('is_subset(host_cert.principals, "a.example.com", "b.example.com")');
    assert.ok(typeof w !== 'string');
    assert.ok(whereAllows(w, ['a.example.com', 'b.example.com']));
    assert.ok(!whereAllows(w, ['a.example.com', 'c.example.com']));
    const suffix = parseHostCertWhere('all_end_with(host_cert.principals, ".example.com") && ' +
      'all_equal(host_cert.principals, "x.example.com")'); // prettier-ignore
    assert.ok(typeof suffix !== 'string' && whereAllows(suffix, ['x.example.com']));
    assert.ok(typeof suffix !== 'string' && !whereAllows(suffix, ['y.example.com']));
    for (const bad of ['contains(host_cert.principals, "a")', 'is_subset(host_cert.principals)', 'true', '']) {
      assert.equal(typeof parseHostCertWhere(bad), 'string', bad);
    }
  });

  it('a pattern only where a rule lists it exactly: never by suffix, never by a rule without where', () => {
    const listed = parseHostCertWhere('is_subset(host_cert.principals, "*.web.example.com")');
    const suffix = parseHostCertWhere('all_end_with(host_cert.principals, ".example.com")');
    assert.ok(typeof listed !== 'string' && typeof suffix !== 'string');
    assert.ok(whereAllows(listed, ['*.web.example.com']));
    assert.ok(!whereAllows(suffix, ['*.example.com']));
    assert.ok(whereAllows([], ['anything.example.com']));
    assert.ok(!whereAllows([], ['*']));
  });

  it('checkHostPrincipals: no rule, a principal outside the rule, a deny: refused naming principals', () => {
    refused(() => checkHostPrincipals([role({ allow: { logins: ['x'] } })], ['h']), 'BAD_REQUEST', 'principals',
      /allow no host certificates.*host_cert/); // prettier-ignore
    const web = role({ allow: { rules: [hostRule('is_subset(host_cert.principals, "web1", "web2")')] } });
    checkHostPrincipals([web], ['web1', 'web2']);
    refused(() => checkHostPrincipals([web], ['web1', 'db1']), 'BAD_REQUEST', 'principals', /do not allow.*db1/);
    // one rule must allow the whole list, as Teleport evaluates a where
    const db = role({ allow: { rules: [hostRule('all_equal(host_cert.principals, "db1")')] } });
    refused(() => checkHostPrincipals([web, db], ['web1', 'db1']), 'BAD_REQUEST', 'principals', /do not allow/);
    const any = role({ allow: { rules: [{ resources: ['*'], verbs: ['*'] }] } });
    checkHostPrincipals([any], ['anything.example.com']);
    const deny = role({ deny: { rules: [hostRule('all_end_with(host_cert.principals, ".prod")')] } });
    refused(() => checkHostPrincipals([any, deny], ['ok.dev', 'db.prod']), 'BAD_REQUEST', 'principals', /deny rule/);
    checkHostPrincipals([any, deny], ['ok.dev']);
  });

  it('a deny rule is not bypassed by case or a trailing dot: refused shapes, lowercase comparison', () => {
    assert.match(hostPrincipalShapeProblem('db.example.com.') ?? '', /ends with "\.".*another name/);
    assert.match(hostPrincipalShapeProblem('DB.example.com') ?? '', /uppercase.*ssh compares host names in lowercase/);
    assert.match(hostPrincipalShapeProblem('db.EXAMPLE.com') ?? '', /uppercase/);
    assert.equal(hostPrincipalShapeProblem('db.example.com'), undefined);
    const any = role({ allow: { rules: [{ resources: ['*'], verbs: ['*'] }] } });
    // a role written with uppercase still matches the lowercase request, in allow and deny
    const deny = role({ deny: { rules: [hostRule('is_subset(host_cert.principals, "DB.example.com")')] } });
    refused(() => checkHostPrincipals([any, deny], ['db.example.com']), 'BAD_REQUEST', 'principals', /deny rule/);
    const suffix = role({ deny: { rules: [hostRule('all_end_with(host_cert.principals, ".PROD.example.com")')] } });
    refused(() => checkHostPrincipals([any, suffix], ['x.prod.example.com']), 'BAD_REQUEST', 'principals', /deny/);
    const allow = role({ allow: { rules: [hostRule('is_subset(host_cert.principals, "Web1.example.com")')] } });
    checkHostPrincipals([allow], ['web1.example.com']);
  });

  it('a role whose host_cert where mwi cannot read is refused when written, naming the rule', () => {
    refused(() => checkResource(roleDoc({ allow: { rules: [{ resources: ['event'], verbs: ['list'] }, hostRule(
      'contains(host_cert.principals, "a")')] } })), 'BAD_REQUEST', 'spec.allow.rules[1].where', /is_subset/); // prettier-ignore
    // read: no note; rules on other resources only: the usual note
    assert.deepEqual(checkResource(roleDoc({ allow: { rules: [hostRule()] } })).notes, []);
    assert.deepEqual(checkResource(roleDoc({ allow: { rules: [{ resources: ['event'], verbs: ['list'] }] } })).notes, [
      'spec.allow.rules is not used by mwi (ignored)',
    ]);
  });
});

describe('database grants (Teleport: db_users, db_names; db_labels only as every database)', () => {
  it('a user and a database must be granted; * grants any; a deny wins; {{internal.db_users}} from traits', () => {
    const r = role({ allow: { db_users: ['app', '{{internal.db_users}}'], db_names: ['orders'] } });
    checkDatabaseAccess([r], bot(), 'app', 'orders');
    checkDatabaseAccess([r], bot([{ name: 'db_users', values: ['reporter', 'bad/name'] }]), 'reporter');
    refused(() => checkDatabaseAccess([r], bot(), 'postgres'), 'BAD_REQUEST', 'username', /allow\.db_users/);
    refused(() => checkDatabaseAccess([r], bot([{ name: 'db_users', values: ['bad/name'] }]), 'bad/name'),
      'BAD_REQUEST', 'username', /do not grant/); // prettier-ignore
    refused(() => checkDatabaseAccess([r], bot(), 'app', 'billing'), 'BAD_REQUEST', 'database', /allow\.db_names/);
    const star = role({ allow: { db_users: ['*'] }, deny: { db_users: ['postgres'] } });
    checkDatabaseAccess([star], bot(), 'anyone');
    refused(() => checkDatabaseAccess([star], bot(), 'postgres'), 'BAD_REQUEST', 'username', /do not grant/);
    refused(() => checkDatabaseAccess([role({})], bot(), 'app'), 'BAD_REQUEST', 'username', /do not grant/);
  });

  it('roles: db_users and db_names are read (no note); labels that would limit databases are refused', () => {
    assert.deepEqual(checkResource(roleDoc({ allow: { db_users: ['app'], db_labels: { '*': '*' } } })).notes, []);
    refused(() => checkResource(roleDoc({ allow: { db_users: ['app'], db_labels: { env: 'prod' } } })),
      'BAD_REQUEST', 'spec.allow.db_labels', /no database resources/); // prettier-ignore
    refused(() => checkResource(roleDoc({ deny: { db_labels: { '*': '*' } } })), 'BAD_REQUEST',
      'spec.deny.db_labels', /no database resources/); // prettier-ignore
    refused(() => checkResource(roleDoc({ allow: { db_users: ['a'], db_labels_expression: 'x' } })), 'BAD_REQUEST',
      'spec.allow.db_labels_expression', /no database resources/); // prettier-ignore
    refused(() => checkResource(roleDoc({ allow: { db_users: ['a=b'] } })), 'BAD_REQUEST', 'spec.allow.db_users[0]',
      /database user/); // prettier-ignore
  });
});

describe("tbot.yaml: ssh_host and database outputs (Teleport's types and fields)", () => {
  const base = {
    version: 'v2',
    auth_server: '127.0.0.1:3025',
    onboarding: { token: 't', join_method: 'token', ca_pins: [`sha256:${'ab'.repeat(32)}`] },
  };
  const withOutput = (o: Record<string, unknown>) =>
    validateTbotConfig({ ...base, outputs: [{ destination: { type: 'directory', path: '/tmp/x' }, ...o }] });

  it('ssh_host: principals required, a comma, newline or space refused naming the entry', () => {
    const cfg = withOutput({ type: 'ssh_host', principals: ['web1.example.com', '10.0.0.1'] });
    assert.deepEqual((cfg.outputs[0] as unknown as { principals: string[] }).principals, [
      'web1.example.com',
      '10.0.0.1',
    ]);
    refused(() => withOutput({ type: 'ssh_host', principals: [] }), 'BAD_CONFIG', 'outputs[0].principals',
      /at least one/); // prettier-ignore
    for (const bad of ['a,b', 'a\nb', 'a b', '!a', 'x'.repeat(254)])
      refused(() => withOutput({ type: 'ssh_host', principals: ['ok', bad] }), 'BAD_CONFIG',
        'outputs[0].principals[1]', /host name/); // prettier-ignore
    refused(() => withOutput({ type: 'ssh_host', principals: ['a'], ca_type: 'host' }), 'BAD_CONFIG',
      'outputs[0].ca_type', /user/); // prettier-ignore
  });

  it('database: format tls only, the others named; username required; a CN with / or = refused', () => {
    const cfg = withOutput({ type: 'database', service: 'pg', username: 'app', database: 'orders', format: 'tls' });
    assert.equal((cfg.outputs[0] as unknown as { username: string }).username, 'app');
    for (const [format, why] of [[undefined, /default format/], ['mongo', /mongo\.crt/], ['cockroach', /cockroach/]])
      refused(() => withOutput({ type: 'database', service: 'pg', username: 'app', ...(format ? { format } : {}) }),
        'BAD_CONFIG', 'outputs[0].format', why as RegExp); // prettier-ignore
    refused(() => withOutput({ type: 'database', service: 'pg', format: 'tls' }), 'BAD_CONFIG',
      'outputs[0].username', /subject CN/); // prettier-ignore
    for (const bad of ['a/b', 'CN=x', 'a,b'])
      refused(() => withOutput({ type: 'database', service: 'pg', username: bad, format: 'tls' }), 'BAD_CONFIG',
        'outputs[0].username', /identifier/); // prettier-ignore
    refused(() => withOutput({ type: 'database', username: 'app', format: 'tls' }), 'BAD_CONFIG',
      'outputs[0].service', /.+/); // prettier-ignore
  });

  it("the files: Teleport's names, keys 0600", async () => {
    const k = await generateKeys('ec-p256');
    const host = renderSshHostFiles(k.privateKeyPem, {
      ssh_cert: 'ecdsa-sha2-nistp256-cert-v01@openssh.com AAAA',
      ssh_user_ca_keys: ['ssh-ed25519 AAAA c ssh-user'],
      ssh_host_ca_keys: [],
      principals: ['h'],
      expires: '',
      cluster_name: 'c',
    });
    assert.deepEqual(
      host.map((f) => [f.name, f.mode]),
      [...SSH_HOST_FILES].map((n) => [n, n === 'ssh_host' ? 0o600 : 0o644]),
    );
    assert.match(host[0]!.data, /^-----BEGIN EC PRIVATE KEY-----/);
    assert.equal(host[2]!.data, 'ssh-ed25519 AAAA c ssh-user\n');
    const db = renderDatabaseFiles(k.privateKeyPem, {
      tls_cert: 'C',
      tls_ca_certs: ['A', 'B'],
      expires: '',
      cluster_name: 'c',
    });
    assert.deepEqual(db.map((f) => [f.name, f.mode, f.data.slice(0, 2)]), [['tls.crt', 0o644, 'C'],
      ['tls.key', 0o600, '--'], ['tls.cas', 0o644, 'AB']]); // prettier-ignore
  });
});
