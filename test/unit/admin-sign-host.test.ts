import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { hostPrincipalProblem } from '../../src/api/admin.js';
import { isMwiError } from '../../src/errors.js';
import { testContext } from '../helpers/auth-context.js';

const hostKey = () => {
  const file = join(mkdtempSync(join(tmpdir(), 'mwi-host-')), 'key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file]);
  return readFileSync(`${file}.pub`, 'utf8');
};

it('sign/host: an operator identity is refused, whatever it asks; the local admin identity signs', async () => {
  const { admin } = await testContext();
  const public_key = hostKey();
  await assert.rejects(
    admin.signHost({ public_key, principals: ['db1.example'], ttl: '8760h' }, 'alice'),
    (e) => isMwiError(e, 'ACCESS_DENIED') && /an operator identity cannot sign host certificates/.test(e.message),
  );
  const { ssh_cert } = await admin.signHost(
    { public_key, principals: ['db1.example', '10.0.0.7', 'fe80::1%eth0'] },
    'admin',
  );
  assert.match(ssh_cert, /^ssh-ed25519-cert-v01@openssh\.com /);
});

it('sign/host: a principal that is a pattern (*, ?, !) is refused, for the local admin identity too', async () => {
  const { admin } = await testContext();
  const public_key = hostKey();
  for (const p of ['*', 'db?.example', '!db1', '*.example.com', 'a b']) {
    await assert.rejects(
      admin.signHost({ public_key, principals: ['x', p] }, 'admin'),
      (e) => isMwiError(e, 'BAD_REQUEST') && e.field === 'host' && /is not a host name or IP address/.test(e.message),
      p,
    );
    assert.ok(hostPrincipalProblem(p), p);
  }
  for (const p of ['db1.example', '10.0.0.7', '::1', 'localhost']) assert.equal(hostPrincipalProblem(p), undefined, p);
});
