import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { aclSpec } from '../../src/agent/destinations/acl.js';
import { DirectoryDestination, secureSymlinksSupported } from '../../src/agent/destinations/directory.js';
import { IDENTITY_FILES, renderIdentityFiles } from '../../src/agent/outputs/identity.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { isMwiError } from '../../src/errors.js';
import type { Logger } from '../../src/util/log.js';
import { tempDir } from '../helpers/procs.js';

const tmp = tempDir('tbot-yaml-dest');
after(tmp.cleanup);
const FILE = [{ name: 'tlscert', data: 'cert', mode: 0o644 }];

/** A real directory and a link to it, under the temp dir. */
function linked(name: string): { real: string; link: string } {
  const real = join(tmp.path, `${name}-real`);
  mkdirSync(real, { mode: 0o700 });
  const link = join(tmp.path, `${name}-link`);
  symlinkSync(real, link);
  return { real, link };
}

const refusedLink = (path: string) => (e: unknown) =>
  isMwiError(e, 'BAD_CONFIG') && e.message.includes(`${path} is a symlink`) && /symlinks: insecure/.test(e.message);

describe('directory destination: symlinks (secure | try-secure | insecure)', () => {
  it('secure is supported here (O_NOFOLLOW and file owners), so try-secure, the default, is secure', () => {
    assert.equal(secureSymlinksSupported(), true);
    assert.equal(new DirectoryDestination(join(tmp.path, 'x')).symlinks, 'secure');
    assert.equal(new DirectoryDestination(join(tmp.path, 'x'), 'f', { symlinks: 'try-secure' }).symlinks, 'secure');
    assert.equal(new DirectoryDestination(join(tmp.path, 'x'), 'f', { symlinks: 'insecure' }).symlinks, 'insecure');
  });

  it('secure: a destination path that is a symlink is refused, and nothing is written through it', async () => {
    const { real, link } = linked('secure');
    const d = new DirectoryDestination(link, 'outputs[0].destination.path', { symlinks: 'secure' });
    await assert.rejects(d.writeAll(FILE), refusedLink(link));
    assert.ok(!existsSync(join(real, 'tlscert')));
    await assert.rejects(d.read('tlscert'), refusedLink(link));
  });

  it('secure: a symlink anywhere on the path is refused, before mkdir -p could create anything through it', async () => {
    const { real, link } = linked('parent');
    const d = new DirectoryDestination(join(link, 'a', 'out'), 'storage.path', { symlinks: 'secure' });
    await assert.rejects(
      d.writeAll(FILE),
      (e: unknown) =>
        isMwiError(e, 'BAD_CONFIG') &&
        e.field === 'storage.path' &&
        e.message.startsWith(`storage.path: ${link}, on the path to ${join(link, 'a', 'out')}, is a symlink`),
    );
    assert.ok(!existsSync(join(real, 'a')), 'no directory made through the link');
  });

  it('insecure: the link is followed (its target checked as any destination)', async () => {
    const { real, link } = linked('insecure');
    const d = new DirectoryDestination(link, 'f', { symlinks: 'insecure' });
    await d.writeAll(FILE);
    assert.equal(readFileSync(join(real, 'tlscert'), 'utf8'), 'cert');
    assert.equal(await d.read('tlscert'), 'cert');
    const under = new DirectoryDestination(join(link, 'sub'), 'f', { symlinks: 'insecure' });
    await under.writeAll(FILE);
    assert.equal(readFileSync(join(real, 'sub', 'tlscert'), 'utf8'), 'cert');
  });
});

describe('directory destination: acls and readers', () => {
  it('the ACL gives the readers read (and search on directories), the owner rw, and nobody else anything', () => {
    const entries = [
      { tag: 'u' as const, id: 1001 },
      { tag: 'g' as const, id: 1002 },
    ];
    assert.equal(aclSpec(entries, false), 'u::rw-,g::---,o::---,m::r--,u:1001:r--,g:1002:r--');
    assert.equal(aclSpec(entries, true), 'u::rwx,g::---,o::---,m::r-x,u:1001:r-x,g:1002:r-x');
  });

  it('acls: try without a usable setfacl warns once and writes without ACLs; required fails before writing', async () => {
    const warnings: string[] = [];
    const log: Logger = { debug() {}, info() {}, warn: (m) => warnings.push(m), error() {} };
    const path = process.env.PATH;
    process.env.PATH = join(tmp.path, 'no-such-bin');
    try {
      const tryDir = join(tmp.path, 'acl-try');
      const d = new DirectoryDestination(tryDir, 'outputs[0].destination.path', {
        acls: 'try',
        readers: [{ user: 1001 }],
        log,
      });
      await d.writeAll(FILE);
      await d.writeAll(FILE);
      assert.equal(readFileSync(join(tryDir, 'tlscert'), 'utf8'), 'cert');
      assert.deepEqual(warnings, ['acls: try: ACLs cannot be set, writing without them: the readers cannot read']);

      const reqDir = join(tmp.path, 'acl-required');
      const r = new DirectoryDestination(reqDir, 'outputs[1].destination.path', {
        acls: 'required',
        readers: [{ group: 1002 }],
      });
      const required = (e: unknown) =>
        isMwiError(e, 'BAD_CONFIG') &&
        e.field === 'outputs[1].destination.acls' &&
        /acls: required, but POSIX ACLs cannot be set on .*: setfacl not found \(install Debian's acl package\)/.test(
          e.message,
        );
      await assert.rejects(r.prepare(), required);
      await assert.rejects(r.writeAll(FILE), required);
      assert.ok(!existsSync(join(reqDir, 'tlscert')));
      // no readers: nothing to set, nothing tried
      await new DirectoryDestination(join(tmp.path, 'acl-none'), 'f', { acls: 'required' }).writeAll(FILE);
    } finally {
      process.env.PATH = path;
    }
  });

  it('prepare: checks an existing directory at start and creates nothing when there is nothing to test', async () => {
    const absent = join(tmp.path, 'prepare-absent');
    await new DirectoryDestination(absent).prepare();
    assert.ok(!existsSync(absent));
    const { link } = linked('prepare');
    await assert.rejects(new DirectoryDestination(link).prepare(), refusedLink(link));
  });
});

describe('identity output: ssh_config on|off', () => {
  const certs = {
    tls_cert: '-----BEGIN CERTIFICATE-----\nTLS\n-----END CERTIFICATE-----\n',
    tls_ca_certs: ['-----BEGIN CERTIFICATE-----\nHOSTCA\n-----END CERTIFICATE-----\n'],
    ssh_cert: 'ecdsa-sha2-nistp256-cert-v01@openssh.com AAAA',
    ssh_user_ca_keys: ['ssh-ed25519 USERCA c ssh-user'],
    ssh_host_ca_keys: ['ssh-ed25519 HOSTCA c ssh-host'],
    logins: ['deploy'],
    expires: '2030-01-01T00:00:00Z',
    cluster_name: 'c',
  };

  it('off writes neither ssh_config nor known_hosts; on writes both', async () => {
    const k = await generateKeys('ec-p256');
    const names = (sshConfig: boolean) =>
      renderIdentityFiles(k.privateKeyPem, certs, (f) => `/out/${f}`, sshConfig).map((f) => f.name);
    assert.deepEqual(names(true), [...IDENTITY_FILES]);
    assert.deepEqual(
      names(false),
      IDENTITY_FILES.filter((n) => n !== 'ssh_config' && n !== 'known_hosts'),
    );
  });
});
