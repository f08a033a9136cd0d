import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeProtectedHeader } from 'jose';
import type { ApiClient } from '../../src/api/client.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { run } from '../helpers/procs.js';
import { anonymousCall } from '../helpers/raw-api.js';
import { freePort } from '../helpers/sshd.js';
import { createIdentity, workloadBot, workloadBotIdentity } from '../helpers/workload-identity.js';

/**
 * An independent verifier (PyJWT, Debian's python3-jwt): fetches the discovery document over
 * HTTPS, then its jwks_uri, and verifies the token's signature, audience, issuer and expiry.
 */
const VERIFY = `
import json, ssl, sys, urllib.request, jwt
discovery_url, cafile, token, audience = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=cafile)
get = lambda u: json.load(urllib.request.urlopen(u, context=ctx))
doc = get(discovery_url)
jwks = jwt.PyJWKSet.from_dict(get(doc["jwks_uri"]))
kid = jwt.get_unverified_header(token)["kid"]
key = next(k for k in jwks.keys if k.key_id == kid)
claims = jwt.decode(token, key.key, algorithms=doc["id_token_signing_alg_values_supported"],
                    audience=audience, issuer=doc["issuer"])
print(json.dumps(claims))
`;

async function pyVerify(discoveryUrl: string, cafile: string, token: string, audience: string) {
  return run('/usr/bin/python3', ['-c', VERIFY, discoveryUrl, cafile, token, audience]);
}

describe('workload identity: federation, export and rotation', () => {
  let c: TestCluster;
  let api: ApiClient;
  let issuer: string;
  let hostCa: string;
  before(async () => {
    const port = await freePort();
    issuer = `https://localhost:${port}/workload-identity`;
    c = await startCluster('Fed.Example', `workload_identity:\n  issuer: ${issuer}\n`, [
      '--listen',
      `127.0.0.1:${port}`,
    ]);
    await createIdentity(
      c,
      'api',
      'kind: workload_identity\nversion: v1\nmetadata: { name: api, labels: { team: green } }\n' +
        'spec:\n  spiffe: { id: "/api/{{ user.bot_name }}" }\n',
    );
    api = await workloadBot(c, 'fedbot', 'green');
    hostCa = join(c.dir, 'host-ca.pem');
    writeFileSync(hostCa, await c.tctlOk(['ca', 'export', '--type', 'tls-host']));
  });
  after(async () => {
    api?.close();
    await c?.stop();
  });

  it('a JWT-SVID verifies with PyJWT against the discovery document and JWKS served over HTTPS (ES256 and RS256)', async () => {
    for (const algorithm of ['ES256', 'RS256'] as const) {
      const res = await api.issueJwtSvids({ selector: { name: 'api' }, audiences: ['sts.amazonaws.com'], algorithm });
      const token = res.svids[0]!.token;
      assert.equal(decodeProtectedHeader(token).alg, algorithm);
      const v = await pyVerify(`${issuer}/.well-known/openid-configuration`, hostCa, token, 'sts.amazonaws.com');
      assert.equal(v.code, 0, v.stderr);
      const claims = JSON.parse(v.stdout) as Record<string, unknown>;
      // the trust domain is the cluster name in lowercase (SPIFFE trust domains are)
      assert.equal(claims.sub, 'spiffe://fed.example/api/fedbot');
      assert.equal(claims.iss, issuer);
      // a wrong audience is refused by the same verifier
      const wrong = await pyVerify(`${issuer}/.well-known/openid-configuration`, hostCa, token, 'other');
      assert.notEqual(wrong.code, 0);
      assert.match(wrong.stderr, /InvalidAudienceError/);
    }
  });

  it('serves the SPIFFE bundle (https_web profile) without a client certificate; tctl exports the same', async () => {
    const r = await anonymousCall(c.addr, c.caPin, 'GET', '/webapi/spiffe/bundle.json');
    assert.equal(r.status, 200, r.text);
    const x509 = r.json.keys.filter((k: { use: string }) => k.use === 'x509-svid');
    const jwtKeys = r.json.keys.filter((k: { use: string }) => k.use === 'jwt-svid');
    assert.equal(x509.length, 1);
    assert.equal(jwtKeys.length, 2);
    assert.ok(jwtKeys.every((k: { kid?: string }) => typeof k.kid === 'string'));
    assert.equal(typeof r.json.spiffe_sequence, 'number');
    assert.equal(r.json.spiffe_refresh_hint, 300);
    const exported = await c.tctlOk(['auth', 'export', '--type', 'spiffe']);
    assert.equal(new X509Certificate(exported).raw.toString('base64'), x509[0].x5c[0]);
    assert.equal(await c.tctlOk(['auth', 'export', '--type', 'tls-spiffe']), exported);
    const jwks = JSON.parse(await c.tctlOk(['auth', 'export', '--type', 'jwt'])) as { keys: Array<{ kid: string }> };
    assert.deepEqual(
      jwks.keys.map((k) => k.kid),
      jwtKeys.map((k: { kid: string }) => k.kid),
    );
  });

  it('Cache-Control: public with a max-age below the refresh hint on the federation documents; no-store for bots', async () => {
    for (const path of [
      '/webapi/spiffe/bundle.json',
      '/workload-identity/jwt-jwks.json',
      '/workload-identity/.well-known/openid-configuration',
      '/.well-known/openid-configuration',
    ]) {
      const r = await anonymousCall(c.addr, c.caPin, 'GET', path);
      assert.equal(r.status, 200, `${path}: ${r.text}`);
      const m = /^public, max-age=(\d+)$/.exec(String(r.headers['cache-control']));
      assert.ok(m && Number(m[1]) > 0 && Number(m[1]) < 300, `${path}: ${r.headers['cache-control']}`);
    }
    const bot = await workloadBotIdentity(c, 'cachebot', 'green');
    const r = await anonymousCall(c.addr, c.caPin, 'GET', '/v1/workload-identity/bundle', undefined, bot);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers['cache-control'], 'no-store');
    assert.equal(typeof r.json.trust_domain, 'string');
  });

  it('tctl status shows the trust domain and issuer; ca export points to auth export for the other CAs', async () => {
    const status = await c.tctlOk(['status']);
    assert.match(status, /SPIFFE +spiffe:\/\/fed\.example +JWT issuer https:\/\/localhost:\d+\/workload-identity\n/);
    const json = JSON.parse(await c.tctlOk(['status', '--format', 'json']));
    assert.deepEqual(json.workload_identity, { trust_domain: 'fed.example', issuer });
    for (const type of ['spiffe', 'jwt', 'db-client', 'db']) {
      const r = await c.tctl(['ca', 'export', '--type', type]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(`unknown CA type "${type}".* is exported with tctl auth export --type ${type}`),
      );
    }
  });

  it('tctl auth rotate --type spiffe: new SVIDs chain to the new CA; the old CA stays in the bundle', async () => {
    const dir = c.dir;
    const key = await generateKeys('ec-p256');
    const before = await api.issueX509Svids({ selector: { name: 'api' }, public_key: key.publicKeyPem });
    writeFileSync(join(dir, 'old-svid.pem'), before.svids[0]!.cert_pem);
    const out = await c.tctlOk(['auth', 'rotate', '--type', 'spiffe']);
    assert.match(out, /rotated the SPIFFE CA: .* the old stay trusted until \S+ \(bundle revision [0-9a-f]+\)/);
    const bundle = await api.workloadBundle();
    assert.notEqual(bundle.revision, before.bundle.revision);
    assert.equal(bundle.x509_authorities_pem.length, 2);
    assert.equal(bundle.x509_authorities_pem[1], before.bundle.x509_authorities_pem[0]);
    const after = await api.issueX509Svids({ selector: { name: 'api' }, public_key: key.publicKeyPem });
    writeFileSync(join(dir, 'new-svid.pem'), after.svids[0]!.cert_pem);
    writeFileSync(join(dir, 'new-ca.pem'), bundle.x509_authorities_pem[0]!);
    writeFileSync(join(dir, 'exported.pem'), await c.tctlOk(['auth', 'export', '--type', 'spiffe']));
    const verify = (ca: string, cert: string) => run('openssl', ['verify', '-CAfile', join(dir, ca), join(dir, cert)]);
    assert.equal((await verify('new-ca.pem', 'new-svid.pem')).code, 0);
    assert.notEqual((await verify('new-ca.pem', 'old-svid.pem')).code, 0);
    // the exported bundle trusts both until the old CA's grace period ends
    assert.equal((await verify('exported.pem', 'old-svid.pem')).code, 0);
    assert.equal((await verify('exported.pem', 'new-svid.pem')).code, 0);
    const events = c.audit().filter((e) => e.event === 'workload_identity.rotate');
    assert.equal(events.at(-1)?.resource, 'cert_authority/spiffe');
  });

  it('tctl auth rotate --type jwt: new kid; a token signed before still verifies against the JWKS', async () => {
    const old = (await api.issueJwtSvids({ selector: { name: 'api' }, audiences: ['vault'] })).svids[0]!.token;
    await c.tctlOk(['auth', 'rotate', '--type', 'jwt']);
    const fresh = (await api.issueJwtSvids({ selector: { name: 'api' }, audiences: ['vault'] })).svids[0]!.token;
    assert.notEqual(decodeProtectedHeader(fresh).kid, decodeProtectedHeader(old).kid);
    for (const token of [old, fresh]) {
      const v = await pyVerify(`${issuer}/.well-known/openid-configuration`, hostCa, token, 'vault');
      assert.equal(v.code, 0, v.stderr);
    }
  });

  it("refuses Teleport's phased rotation flags, and types mwi does not rotate (exit 2)", async () => {
    const manual = await c.tctl(['auth', 'rotate', '--type', 'spiffe', '--manual']);
    assert.equal(manual.code, 2);
    assert.match(manual.stderr, /--manual: mwi rotates in one step/);
    const host = await c.tctl(['auth', 'rotate', '--type', 'host']);
    assert.equal(host.code, 2);
    assert.match(host.stderr, /--type: mwi rotates the workload identity CAs only/);
  });
});
