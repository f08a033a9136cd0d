import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { adminIdentityPath, authInfoPath, DEFAULT_DATA_DIR, readIdentityFile } from '../../src/api/local.js';

it('local files: mwi start and a local tctl agree on the data dir and the files in it', () => {
  assert.equal(DEFAULT_DATA_DIR, '/var/lib/mwi');
  assert.equal(adminIdentityPath('/d'), '/d/admin/identity.json');
  assert.equal(authInfoPath('/d'), '/d/auth.json');
});

it('readIdentityFile: the JSON form mwi start writes, the PEM form of a tbot identity output, or nothing', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mwi-idfile-'));
  assert.equal(readIdentityFile(join(dir, 'none')), undefined);
  const json = { cert: 'C', key: 'K', ca_certs: ['A'], cluster_name: 'c', expires: 'e' };
  writeFileSync(join(dir, 'id.json'), JSON.stringify(json));
  assert.deepEqual(readIdentityFile(join(dir, 'id.json')), json);
  const pem = (label: string, body: string) => `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
  const [key, cert, ca] = [pem('PRIVATE KEY', 'AAAA'), pem('CERTIFICATE', 'BBBB'), pem('CERTIFICATE', 'CCCC')];
  writeFileSync(join(dir, 'identity'), `${key}ssh-ed25519-cert-v01@openssh.com AAAA\n${cert}${ca}`);
  const fromPem = { key, cert, ca_certs: [ca], cluster_name: '', expires: '' };
  assert.deepEqual(readIdentityFile(join(dir, 'identity')), fromPem);
  writeFileSync(join(dir, 'half'), `${key}${cert}`);
  assert.throws(() => readIdentityFile(join(dir, 'half')), /not an identity file/);
});
