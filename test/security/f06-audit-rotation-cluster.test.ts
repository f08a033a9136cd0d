import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApiClient } from '../../src/api/client.js';
import { readIdentityFile } from '../../src/api/local.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';

/** mwi.yaml `audit` reaches the running Auth Service, and tctl audit ls reads across rotated files. */
describe('finding 6: audit log rotation configured in mwi.yaml', () => {
  let c: TestCluster;
  const maxSize = 64 * 1024;
  before(async () => {
    c = await startCluster('audit-rotation', 'audit:\n  max_size: 64KB\n  max_files: 2\n');
  });
  after(async () => c?.stop());

  it('finding 6: the Auth Service rotates events.log at audit.max_size, keeps audit.max_files, and tctl audit ls reads across them', async () => {
    const id = readIdentityFile(join(c.dataDir, 'admin', 'identity.json'))!;
    const api = new ApiClient({ addrs: [c.addr], tls: { ca: id.ca_certs, cert: id.cert, key: id.key } });
    const roles = 1500;
    try {
      // ~150 bytes of audit each: several times what three 64 KiB files hold
      for (let i = 0; i < roles; i += 50) {
        await Promise.all(
          Array.from({ length: 50 }, (_, j) =>
            api.call('POST', '/v1/admin/resources', {
              resource: {
                kind: 'role',
                metadata: { name: `rotated-role-${i + j}` },
                spec: { allow: { logins: ['x'] } },
              },
            }),
          ),
        );
      }
    } finally {
      api.close();
    }
    const auditDir = join(c.dataDir, 'audit');
    // (refusals.log, the refused joins' own file, stays empty here)
    const files = readdirSync(auditDir)
      .filter((f) => f.startsWith('events.log'))
      .sort();
    assert.deepEqual(files, ['events.log', 'events.log.1', 'events.log.2']);
    const total = files.reduce((sum, f) => sum + statSync(join(auditDir, f)).size, 0);
    assert.ok(total < maxSize * 3, `${total} bytes of audit log`);
    // newest first, across the files: the last roles created, in reverse order of their creation
    const listed = JSON.parse(
      await c.tctlOk(['audit', 'ls', '--limit', '600', '--type', 'resource.created', '--format', 'json']),
    ) as Array<{ resource: string }>;
    assert.equal(listed.length, 600);
    const numbers = listed.map((e) => Number(/rotated-role-(\d+)$/.exec(e.resource)?.[1]));
    assert.equal(Math.max(...numbers), roles - 1);
    assert.equal(new Set(numbers).size, 600, 'each event once');
    assert.ok(
      numbers.every((n) => n >= roles - 50 * 13),
      'only the newest events',
    );
  });
});
