import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { ApiClient } from '../../src/api/client.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { isMwiError } from '../../src/errors.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { REPO_ROOT, run, waitFor } from '../helpers/procs.js';
import { createIdentity, workloadBot } from '../helpers/workload-identity.js';

describe('workload identity: the three routes', () => {
  let c: TestCluster;
  let api: ApiClient;
  before(async () => {
    c = await startCluster('wi.example');
    await createIdentity(
      c,
      'web',
      'kind: workload_identity\nversion: v1\nmetadata: { name: web, labels: { team: blue } }\n' +
        'spec:\n  spiffe:\n    id: /svc/web/{{ user.bot_name }}\n    hint: web server\n' +
        '    x509: { dns_sans: [web.internal] }\n',
    );
    api = await workloadBot(c, 'wibot', 'blue');
  });
  after(async () => {
    api?.close();
    await c?.stop();
  });

  it('issues an X.509-SVID that openssl verifies against the bundle, with one URI SAN', async () => {
    const keys = await generateKeys('ec-p256');
    const res = await api.issueX509Svids({ selector: { name: 'web' }, public_key: keys.publicKeyPem, ttl: '10m' });
    assert.equal(res.svids.length, 1);
    const svid = res.svids[0]!;
    assert.equal(svid.spiffe_id, 'spiffe://wi.example/svc/web/wibot');
    assert.equal(svid.hint, 'web server');
    const cert = new X509Certificate(svid.cert_pem);
    assert.equal(cert.subjectAltName, 'DNS:web.internal, URI:spiffe://wi.example/svc/web/wibot');
    assert.equal(cert.ca, false);
    const ttl = Date.parse(cert.validTo) - Date.parse(cert.validFrom);
    assert.ok(ttl <= 11 * 60_000, `ttl ${ttl}`);
    assert.equal(res.bundle.trust_domain, 'wi.example');
    const dir = c.dir;
    writeFileSync(join(dir, 'svid.pem'), svid.cert_pem);
    writeFileSync(join(dir, 'bundle.pem'), res.bundle.x509_authorities_pem.join(''));
    const v = await run('openssl', [
      'verify',
      '-purpose',
      'sslclient',
      '-CAfile',
      join(dir, 'bundle.pem'),
      join(dir, 'svid.pem'),
    ]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    const text = await run('openssl', ['x509', '-in', join(dir, 'svid.pem'), '-noout', '-text']);
    assert.match(text.stdout, /X509v3 Key Usage: critical\s+Digital Signature\s/);
    assert.match(text.stdout, /TLS Web Server Authentication, TLS Web Client Authentication/);
    assert.match(text.stdout, /CA:FALSE/);
    const bundle = await api.workloadBundle();
    assert.deepEqual(bundle, res.bundle);
  });

  it('issues a JWT-SVID that verifies against the bundle JWKS', async () => {
    const res = await api.issueJwtSvids({
      selector: { labels: { team: ['blue'] } },
      audiences: ['https://aud.example'],
    });
    assert.equal(res.svids.length, 1);
    const bundle = await api.workloadBundle();
    const { payload, protectedHeader } = await jwtVerify(res.svids[0]!.token, createLocalJWKSet(bundle.jwks), {
      audience: 'https://aud.example',
    });
    assert.equal(payload.sub, 'spiffe://wi.example/svc/web/wibot');
    assert.equal(protectedHeader.typ, 'JWT');
    assert.equal(protectedHeader.alg, 'ES256');
    assert.ok(payload.jti && payload.iat && payload.exp);
  });

  it("loads Teleport's tctl get form of a workload_identity, and issues from it with templates and rules", async () => {
    const created = await c.tctlOk([
      'create',
      '-f',
      join(REPO_ROOT, 'test', 'compat', 'resources', 'workload-identity.yaml'),
    ]);
    assert.match(created, /workload_identity "k8s-workloads" has been created/);
    const keys = await generateKeys('ec-p256');
    const k8s = (namespace: string) => ({
      kubernetes: { attested: true, namespace, service_account: 'api', pod_name: 'api-1', pod_uid: 'u1' },
    });
    const res = await api.issueX509Svids({
      selector: { name: 'k8s-workloads' },
      public_key: keys.publicKeyPem,
      ttl: '24h',
      attributes: k8s('prod'),
    });
    const svid = res.svids[0]!;
    assert.equal(svid.spiffe_id, 'spiffe://wi.example/k8s/prod/api');
    const cert = new X509Certificate(svid.cert_pem);
    assert.equal(cert.subjectAltName, 'DNS:api.prod.svc, URI:spiffe://wi.example/k8s/prod/api');
    // maximum_ttl 14400s caps the 24h asked
    assert.ok(Date.parse(cert.validTo) - Date.now() <= 4 * 3600_000 + 5000);
    await assert.rejects(
      api.issueX509Svids({
        selector: { name: 'k8s-workloads' },
        public_key: keys.publicKeyPem,
        attributes: k8s('dev'),
      }),
      (err) => isMwiError(err, 'ACCESS_DENIED'),
    );
  });

  it('refuses an identity the bot is not granted, and tells the operator why', async () => {
    await createIdentity(
      c,
      'db',
      'kind: workload_identity\nversion: v1\nmetadata: { name: db, labels: { team: red } }\n' +
        'spec:\n  spiffe: { id: /db }\n',
    );
    const keys = await generateKeys('ec-p256');
    await assert.rejects(api.issueX509Svids({ selector: { name: 'db' }, public_key: keys.publicKeyPem }), (err) => {
      assert.ok(isMwiError(err, 'ACCESS_DENIED'), String(err));
      assert.doesNotMatch(err.message, /red|team/);
      return true;
    });
    // the refusal's audit line may reach the file a moment after the answer
    const refusedDb = () =>
      c.audit().filter((e) => e.event === 'workload_identity.x509' && e.success === false && /^db:/.test(e.reason));
    await waitFor('the refusal in the audit log', () => refusedDb().length > 0, 5000, 20);
    const refused = refusedDb();
    // tctl reads, lists and removes the kind like the others
    assert.match(await c.tctlOk(['get', 'workload_identity/db']), /kind: workload_identity[\s\S]*id: \/db/);
    assert.match(await c.tctlOk(['get', 'workload_identities']), /name: web[\s\S]*name: db|name: db[\s\S]*name: web/);
    const all = await c.tctlOk(['get', 'all']);
    assert.match(all, /kind: workload_identity/);
    await c.tctlOk(['rm', 'workload_identity/db']);
    assert.equal((await c.tctl(['get', 'workload_identity/db'])).code, 1);
    assert.match(String(refused.at(-1)?.reason), /db: no role of the bot \(wibot-wi\) grants its labels/);
  });
});
