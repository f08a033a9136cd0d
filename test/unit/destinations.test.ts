import assert from 'node:assert/strict';
import { lstatSync, readdirSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { Destination } from '../../src/agent/destinations/destination.js';
import { DirectoryDestination } from '../../src/agent/destinations/directory.js';
import { MemoryDestination } from '../../src/agent/destinations/memory.js';
import { IDENTITY_FILES, renderIdentityFiles } from '../../src/agent/outputs/identity.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { tempDir } from '../helpers/procs.js';

const tmp = tempDir('dest');
after(tmp.cleanup);
let n = 0;

/** The one conformance suite for every destination. */
function destinationConformance(name: string, open: () => Destination): void {
  describe(`destination conformance: ${name}`, () => {
    it('writes a set and reads it back', async () => {
      const d = open();
      await d.writeAll([
        { name: 'a', data: 'one', mode: 0o600 },
        { name: 'b', data: 'two', mode: 0o644 },
      ]);
      assert.equal(await d.read('a'), 'one');
      assert.equal(await d.read('b'), 'two');
      assert.equal(await d.read('missing'), undefined);
    });

    it('replaces the whole set', async () => {
      const d = open();
      await d.writeAll([{ name: 'a', data: 'one', mode: 0o600 }]);
      await d.writeAll([{ name: 'a', data: 'three', mode: 0o600 }]);
      assert.equal(await d.read('a'), 'three');
    });
  });
}

destinationConformance('memory', () => new MemoryDestination());
destinationConformance('directory', () => new DirectoryDestination(join(tmp.path, `d${n++}`)));

describe('directory destination specifics', () => {
  it('creates the directory 0700, key files 0600, and leaves no temp files or old versions', async () => {
    const path = join(tmp.path, 'perm');
    const d = new DirectoryDestination(path);
    for (let i = 0; i < 3; i++) {
      await d.writeAll([
        { name: 'key', data: `k${i}`, mode: 0o600 },
        { name: 'cert', data: `c${i}`, mode: 0o644 },
      ]);
    }
    assert.equal(statSync(path).mode & 0o777, 0o700);
    assert.equal(statSync(join(path, 'key')).mode & 0o777, 0o600);
    assert.equal(statSync(join(path, 'cert')).mode & 0o777, 0o644);
    const entries = readdirSync(path).sort();
    assert.equal(entries.filter((e) => e.startsWith('..v-')).length, 1);
    assert.deepEqual(
      entries.filter((e) => !e.startsWith('..v-')),
      ['..data', 'cert', 'key'],
    );
    assert.equal(readFileSync(join(path, 'key'), 'utf8'), 'k2');
  });

  it('replaces plain files left by an older layout', async () => {
    const path = join(tmp.path, 'legacy');
    mkdirSync(path, { mode: 0o700 });
    writeFileSync(join(path, 'key'), 'old');
    await new DirectoryDestination(path).writeAll([{ name: 'key', data: 'new', mode: 0o600 }]);
    assert.ok(lstatSync(join(path, 'key')).isSymbolicLink());
    assert.equal(readFileSync(join(path, 'key'), 'utf8'), 'new');
  });

  it('refuses file names that escape the directory', async () => {
    await assert.rejects(
      new DirectoryDestination(join(tmp.path, 'esc')).writeAll([{ name: '../x', data: '', mode: 0o600 }]),
      TypeError,
    );
  });
});

describe('identity output layout (golden: Teleport file names)', () => {
  it('renders exactly the documented files with key material 0600', async () => {
    const k = await generateKeys('ec-p256');
    const files = renderIdentityFiles(
      k.privateKeyPem,
      {
        tls_cert: '-----BEGIN CERTIFICATE-----\nTLS\n-----END CERTIFICATE-----\n',
        tls_ca_certs: ['-----BEGIN CERTIFICATE-----\nHOSTCA\n-----END CERTIFICATE-----\n'],
        ssh_cert: 'ecdsa-sha2-nistp256-cert-v01@openssh.com AAAA',
        ssh_user_ca_keys: ['ssh-ed25519 USERCA c ssh-user'],
        ssh_host_ca_keys: ['ssh-ed25519 HOSTCA c ssh-host'],
        logins: ['deploy'],
        expires: '2030-01-01T00:00:00Z',
        cluster_name: 'c',
      },
      (f) => `/out/${f}`,
    );
    assert.deepEqual(
      files.map((f) => f.name),
      [...IDENTITY_FILES],
    );
    const modes = Object.fromEntries(files.map((f) => [f.name, f.mode.toString(8)]));
    assert.deepEqual(modes, {
      identity: '600',
      key: '600',
      'key.pub': '644',
      'key-cert.pub': '644',
      tlscert: '644',
      tlscacerts: '644',
      sshcacerts: '644',
      known_hosts: '644',
      ssh_config: '644',
    });
    const by = Object.fromEntries(files.map((f) => [f.name, f.data]));
    assert.match(by.key!, /^-----BEGIN EC PRIVATE KEY-----/);
    assert.equal(by.known_hosts, '@cert-authority * ssh-ed25519 HOSTCA c ssh-host\n');
    assert.equal(by.sshcacerts, 'cert-authority ssh-ed25519 USERCA c ssh-user\n');
    assert.match(
      by.ssh_config!,
      /IdentityFile "\/out\/key"\n\s+CertificateFile "\/out\/key-cert.pub"\n\s+UserKnownHostsFile "\/out\/known_hosts"/,
    );
    assert.ok(by.identity!.startsWith(by.key!));
  });
});
