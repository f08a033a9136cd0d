import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { adminIdentityPath, type IdentityFile } from '../../src/api/local.js';
import { writeAdminIdentity } from '../../src/auth/local-identity.js';
import { testContext } from '../helpers/auth-context.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

const HOUR = 3600 * 1000;

describe('admin identities are short-lived', () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster();
  });
  after(async () => cluster?.stop());

  it('admin identity: the identity mwi start writes for tctl is valid for hours, not days, and tctl works with it', async () => {
    const file = JSON.parse(readFileSync(adminIdentityPath(cluster.dataDir), 'utf8')) as IdentityFile;
    const cert = new X509Certificate(file.cert);
    const lifetime = Date.parse(cert.validTo) - Date.now();
    assert.ok(
      lifetime <= 4 * HOUR + 60_000,
      `the admin identity is valid for ${Math.round(lifetime / HOUR)} h (a copy of it is admin for that long)`,
    );
    assert.ok(lifetime > HOUR, 'the admin identity must outlive its refresh interval');
    assert.ok(
      Math.abs(Date.parse(file.expires) - Date.parse(cert.validTo)) < 1000,
      'expires says when the certificate ends',
    );
    assert.equal(statSync(adminIdentityPath(cluster.dataDir)).mode & 0o777, 0o600);
    await cluster.tctlOk(['status']);
  });

  it('admin identity: each refresh issues a new key and a new short-lived certificate', async () => {
    const t = await testContext();
    const dir = mkdtempSync(join(tmpdir(), 'mwi-admin-id-'));
    await writeAdminIdentity(t.ctx, dir);
    const a = JSON.parse(readFileSync(adminIdentityPath(dir), 'utf8')) as IdentityFile;
    t.clock.advance(HOUR);
    await writeAdminIdentity(t.ctx, dir);
    const b = JSON.parse(readFileSync(adminIdentityPath(dir), 'utf8')) as IdentityFile;
    assert.notEqual(a.key, b.key);
    for (const f of [a, b]) assert.ok(Date.parse(f.expires) - t.clock.now() <= 4 * HOUR + 60_000);
    assert.ok(Date.parse(b.expires) > Date.parse(a.expires));
  });

  it('admin identity: the running Auth Service refreshes it well before it expires', async () => {
    // imported by name so that a longer interval or a longer lifetime is a change someone makes on purpose
    const { ADMIN_IDENTITY_TTL_MS, LOCAL_REFRESH_MS } = await import('../../src/auth/local-identity.js');
    assert.ok(LOCAL_REFRESH_MS * 3 <= ADMIN_IDENTITY_TTL_MS, 'two missed refreshes still leave a valid identity');
    assert.ok(ADMIN_IDENTITY_TTL_MS <= 4 * HOUR);
  });
});
