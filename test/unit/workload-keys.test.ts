import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { it } from 'node:test';
import { ROTATION_GRACE_MS, WorkloadAuthorities } from '../../src/auth/workload-identity/keys.js';
import { MemoryBackend } from '../../src/storage/memory.js';
import { fakeClock } from '../helpers/clock.js';

const waitFor = async (cond: () => Promise<boolean>) => {
  for (let i = 0; i < 200 && !(await cond()); i++) await new Promise((r) => setTimeout(r, 10));
};

it('two replicas share one SPIFFE CA and JWT keys; a rotation by one reaches the other; the old drop out after the grace period', async () => {
  const backend = new MemoryBackend();
  const clock = fakeClock(Date.now());
  const opts = { clusterName: 'c', trustDomain: 'c', now: clock.now };
  const [a, b] = await Promise.all([WorkloadAuthorities.open(backend, opts), WorkloadAuthorities.open(backend, opts)]);
  try {
    const first = await a.current();
    assert.deepEqual((await b.current()).bundle, first.bundle);
    assert.equal(first.bundle.x509_authorities_pem.length, 1);
    assert.deepEqual(
      first.bundle.jwks.keys.map((k) => [k.alg, k.use, k.kty]),
      [
        ['ES256', 'sig', 'EC'],
        ['RS256', 'sig', 'RSA'],
      ],
    );
    assert.match(new X509Certificate(first.bundle.x509_authorities_pem[0]!).subject, /CN=c/);

    const revision = await a.rotate('spiffe');
    assert.notEqual(revision, first.bundle.revision);
    await waitFor(async () => (await b.current()).bundle.revision === revision);
    const rotated = await b.current();
    assert.equal(rotated.bundle.x509_authorities_pem.length, 2);
    assert.equal(rotated.bundle.x509_authorities_pem[1], first.bundle.x509_authorities_pem[0]);
    assert.notEqual(rotated.ca.certPem, first.ca.certPem);
    assert.ok(rotated.sequence > first.sequence);
    // the JWT keys did not change
    assert.deepEqual(rotated.bundle.jwks, first.bundle.jwks);

    await a.rotate('jwt');
    await waitFor(async () => (await b.current()).bundle.jwks.keys.length === 4);
    const jwt = await b.current();
    assert.notEqual(jwt.signers.ES256.kid, first.signers.ES256.kid);
    assert.equal(jwt.bundle.jwks.keys[0]!.kid, jwt.signers.ES256.kid);

    // just before the end of the grace period the old ones are still trusted; just after, gone
    clock.advance(ROTATION_GRACE_MS - 60_000);
    assert.equal((await a.current()).bundle.x509_authorities_pem.length, 2);
    clock.advance(120_000);
    const after = await a.current();
    assert.equal(after.bundle.x509_authorities_pem.length, 1);
    assert.equal(after.bundle.jwks.keys.length, 2);
    assert.equal(after.ca.certPem, rotated.ca.certPem);
    assert.notEqual(after.bundle.revision, jwt.bundle.revision);
  } finally {
    a.close();
    b.close();
  }
});
