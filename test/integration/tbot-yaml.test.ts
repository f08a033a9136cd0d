import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { cli, tempDir } from '../helpers/procs.js';

const CLUSTER = 'tbot-yaml.example';

/** tbot.yaml keys Teleport users have, with the real tbot against a real Auth Service (issue #11). */
describe('tbot.yaml keys Teleport users have (real tbot)', () => {
  let c: TestCluster;
  let tmp: { path: string; cleanup: () => void };
  let n = 0;
  before(async () => {
    c = await startCluster(CLUSTER);
    tmp = tempDir('tbot-yaml');
    // other users must be able to walk to the outputs that name them as readers (not to write here)
    chmodSync(tmp.path, 0o711);
  });
  after(async () => {
    await c?.stop();
    tmp?.cleanup();
  });

  /** A one-shot tbot.yaml for a fresh bot (memory storage: the one-shot default) with `outputs`. */
  const config = async (outputs: string, extra = ''): Promise<{ file: string; token: string }> => {
    const token = await c.addBot(`yaml-${++n}`, ['deploy']);
    const file = join(tmp.path, `tbot-${n}.yaml`);
    writeFileSync(
      file,
      `version: v2\nauth_server: ${c.addr}\nonboarding:\n  join_method: token\n  token: ${token}\n` +
        `  ca_pins: ["${c.caPin}"]\noneshot: true\n${extra}outputs:\n${outputs}`,
    );
    return { file, token };
  };
  const tbot = (file: string, env?: NodeJS.ProcessEnv) => cli('tbot', ['start', '-c', file], env ? { env } : {});

  it('readers: the named user reads the output through POSIX ACLs (setfacl), a third user cannot', async (t) => {
    if (process.getuid?.() !== 0) return t.skip('needs root to create two local users with useradd (CI runs as root)');
    const suffix = `${process.pid % 10000}${n}`;
    const reader = `mwiread${suffix}`;
    const outsider = `mwiout${suffix}`;
    const group = `mwigrp${suffix}`;
    const ok = (cmd: string, args: string[]) => {
      const r = spawnSync(cmd, args, { encoding: 'utf8' });
      assert.equal(r.status, 0, `${cmd} ${args.join(' ')}: ${r.stderr}`);
      return r.stdout.trim();
    };
    for (const u of [reader, outsider])
      ok('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', u]);
    ok('groupadd', ['--system', group]);
    try {
      const gid = ok('getent', ['group', group]).split(':')[2]!;
      const out = join(tmp.path, 'acl-out');
      const { file } = await config(
        `  - type: identity\n    destination:\n      type: directory\n      path: ${out}\n      acls: required\n` +
          `      readers: [{ user: ${reader} }, { group: ${gid} }]\n`,
      );
      const r = await tbot(file);
      assert.equal(r.code, 0, r.stderr);
      const as = (user: string, args: string[]) => {
        const id = (flag: string) => Number(ok('id', [flag, user]));
        return spawnSync(args[0]!, args.slice(1), { uid: id('-u'), gid: id('-g'), encoding: 'utf8' });
      };
      for (const name of ['key', 'tlscert', 'identity', 'ssh_config']) {
        const read = as(reader, ['cat', join(out, name)]);
        assert.equal(read.status, 0, `${reader} reads ${name}: ${read.stderr}`);
        assert.equal(read.stdout, readFileSync(join(out, name), 'utf8'));
        const denied = as(outsider, ['cat', join(out, name)]);
        assert.notEqual(denied.status, 0, `${outsider} must not read ${name}`);
        assert.match(denied.stderr, /Permission denied/);
      }
      assert.notEqual(as(outsider, ['ls', out]).status, 0, 'the outsider cannot list the directory either');
      // the ACL is exactly: owner, the readers, and nothing for the group or others
      const acl = ok('getfacl', ['--omit-header', '--numeric', join(out, 'key')]).split('\n');
      const uid = ok('id', ['-u', reader]);
      assert.deepEqual(
        acl.sort(),
        ['group::---', `group:${gid}:r--`, 'mask::r--', 'other::---', 'user::rw-', `user:${uid}:r--`].sort(),
      );
      assert.match(ok('getfacl', ['--omit-header', '--numeric', out]), new RegExp(`user:${uid}:r-x`));
    } finally {
      for (const u of [reader, outsider]) spawnSync('userdel', [u]);
      spawnSync('groupdel', [group]);
    }
  });

  it('acls: required where ACLs cannot be set stops before the join (the token stays unused); try warns and writes', async () => {
    const out = join(tmp.path, 'acl-unsupported');
    const outputs = (mode: string) =>
      `  - type: identity\n    destination:\n      type: directory\n      path: ${out}\n      acls: ${mode}\n` +
      `      readers: [{ user: 4242 }]\n`;
    const { file } = await config(outputs('required'));
    // no setfacl on PATH: as on a system without Debian's acl package
    const noAcl = { PATH: join(tmp.path, 'empty-bin') };
    const r = await tbot(file, noAcl);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /destination\.acls: acls: required, but POSIX ACLs cannot be set on .*setfacl not found/);
    assert.ok(!existsSync(out) || readdirSync(out).length === 0, 'nothing written');
    writeFileSync(file, readFileSync(file, 'utf8').replace('acls: required', 'acls: try'));
    const tried = await tbot(file, noAcl);
    assert.equal(tried.code, 0, `the token was not spent by the refused run: ${tried.stderr}`);
    assert.match(tried.stderr, /acls: try: ACLs cannot be set, writing without them/);
    assert.ok(existsSync(join(out, 'tlscert')));
  });

  it('symlinks: a destination path that is a symlink is refused under secure (before joining), followed under insecure', async () => {
    const real = join(tmp.path, 'link-target');
    mkdirSync(real, { mode: 0o700 });
    const link = join(tmp.path, 'link-out');
    symlinkSync(real, link);
    const outputs = (mode: string) =>
      `  - type: identity\n    destination: { type: directory, path: ${link}, symlinks: ${mode} }\n`;
    const { file } = await config(outputs('secure'));
    const refused = await tbot(file);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, new RegExp(`outputs\\[0\\]\\.destination\\.path: ${link} is a symlink`));
    assert.deepEqual(readdirSync(real), []);
    writeFileSync(file, readFileSync(file, 'utf8').replace('symlinks: secure', 'symlinks: insecure'));
    const followed = await tbot(file);
    assert.equal(followed.code, 0, followed.stderr);
    assert.match(readFileSync(join(real, 'tlscert'), 'utf8'), /^-----BEGIN CERTIFICATE-----/);
  });

  it('identity output: ssh_config off writes neither ssh_config nor known_hosts; certificate_ttl is read, with a warning', async () => {
    const off = join(tmp.path, 'ssh-off');
    const on = join(tmp.path, 'ssh-on');
    const { file } = await config(
      `  - type: identity\n    ssh_config: off\n    allow_reissue: true\n    roles: []\n` +
        `    destination: { type: directory, path: ${off} }\n` +
        `  - type: identity\n    cluster: ${CLUSTER}\n    destination: { type: directory, path: ${on} }\n`,
      'certificate_ttl: 30m\n',
    );
    const r = await tbot(file);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /certificate_ttl is deprecated: it is read as credential_ttl/);
    const visible = (d: string) => readdirSync(d).filter((f) => !f.startsWith('.'));
    assert.deepEqual(visible(off).sort(), [
      'identity',
      'key',
      'key-cert.pub',
      'key.pub',
      'sshcacerts',
      'tlscacerts',
      'tlscert',
    ]);
    assert.ok(visible(on).includes('ssh_config') && visible(on).includes('known_hosts'));
    assert.match(readFileSync(join(on, 'known_hosts'), 'utf8'), /^@cert-authority \* ssh-/);
    const cert = new X509Certificate(readFileSync(join(off, 'tlscert')));
    const left = Date.parse(cert.validTo) - Date.now();
    assert.ok(left > 25 * 60_000 && left <= 31 * 60_000, `a 30m credential (${left} ms left)`);
  });

  it("identity output: a cluster other than the bot's is refused naming the field, exit 2, before the token is spent", async () => {
    const out = join(tmp.path, 'other-cluster');
    const { file, token } = await config(
      `  - type: identity\n    cluster: leaf.example\n    destination: { type: directory, path: ${out} }\n`,
    );
    const r = await tbot(file);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(`outputs\\[0\\]\\.cluster: "leaf.example" is not this bot's cluster "${CLUSTER}"`),
    );
    assert.ok(!existsSync(join(out, 'tlscert')));
    // the single-use token is still good: the same file with the cluster fixed joins with it
    writeFileSync(file, readFileSync(file, 'utf8').replace('cluster: leaf.example', `cluster: ${CLUSTER}`));
    const again = await tbot(file);
    assert.equal(again.code, 0, again.stderr);
    assert.ok(existsSync(join(out, 'tlscert')));
    assert.ok(token);
  });
});
