import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readIdentityFile } from '../../src/api/local.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { anonymousCall } from '../helpers/raw-api.js';

/**
 * Hostile input: a resource nested ~5,000 lists deep (in a field the schema would refuse anyway)
 * made POST /v1/admin/apply and /v1/admin/resources answer 500: the recursive __proto__ search
 * ran out of stack before the schema looked. The nesting is bounded first, without recursion:
 * 400 naming the document and the field, nothing written, no stack trace logged.
 */
describe('hostile input: resources nested deeper than any schema', () => {
  let c: TestCluster;
  before(async () => {
    c = await startCluster('deep');
  });
  after(async () => c?.stop());

  const deep = (n: number) => `${'['.repeat(n)}"x"${']'.repeat(n)}`;
  const token = (labels: string) =>
    `{"kind":"token","version":"v2","metadata":{"name":"deep-token"},` +
    `"spec":{"join_method":"github","bot_name":"b","github":{"allow":[{"repository":"o/r"}]},` +
    `"suggested_labels":{"x":${labels}}}}`;

  it('5,000 levels deep: 400 BAD_REQUEST (one resource) / BAD_CONFIG (apply) naming the field, never 500', async () => {
    const id = readIdentityFile(join(c.dataDir, 'admin', 'identity.json'))!;
    const client = { cert: id.cert, key: id.key };
    const one = await anonymousCall(
      c.addr,
      c.caPin,
      'POST',
      '/v1/admin/resources',
      `{"resource":${token(deep(5000))}}`,
      client,
    );
    assert.equal(one.status, 400, one.text);
    assert.equal(one.json?.error?.code, 'BAD_REQUEST');
    assert.match(one.json?.error?.message, /^spec\.suggested_labels\.x: nested more than 64 levels deep/);

    const role = '{"kind":"role","metadata":{"name":"r"},"spec":{"allow":{"logins":["x"]}}}';
    const many = await anonymousCall(
      c.addr,
      c.caPin,
      'POST',
      '/v1/admin/apply',
      `{"resources":[{"resource":${role}},{"resource":${token(deep(5000))}}]}`,
      client,
    );
    assert.equal(many.status, 400, many.text);
    assert.equal(many.json?.error?.code, 'BAD_CONFIG');
    assert.match(
      many.json?.error?.message,
      /^document 2 \(token "deep-token"\): spec\.suggested_labels\.x: nested more than 64 levels deep/,
    );
    // a deep object (no lists) too, and nothing was written
    const objects = `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`;
    const obj = await anonymousCall(
      c.addr,
      c.caPin,
      'POST',
      '/v1/admin/apply',
      `{"resources":[{"resource":${token(objects)}}]}`,
      client,
    );
    assert.equal(obj.status, 400, obj.text);
    assert.match(obj.json?.error?.message, /nested more than 64 levels deep/);
    assert.doesNotMatch(await c.tctlOk(['get', 'roles']), /name: r\n/);
    assert.doesNotMatch(c.proc.out(), /RangeError|Maximum call stack|unexpected error/);
  });
});
