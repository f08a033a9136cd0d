import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { clusterFile, roleYaml, startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { parse } from 'yaml';
import { cli, CLI_DIR, exited, run } from '../helpers/procs.js';
import { AdminClient } from '../../src/api/admin-client.js';
import { ApiClient } from '../../src/api/client.js';
import { readIdentityFile } from '../../src/api/local.js';
import { NEXT_PAGE_HEADER } from '../../src/api/wire.js';

/** The local Auth Service's admin identity file. */
const adminIdentity = (c: TestCluster) => join(c.dataDir, 'admin', 'identity.json');

describe('tctl against a real Auth Service', () => {
  let c: TestCluster;
  before(async () => {
    c = await startCluster('tctl.example');
  });
  after(async () => c?.stop());

  it('listings page through the real Auth Service: every item once, in order, the next page token in a header', async () => {
    const id = readIdentityFile(join(c.dataDir, 'admin', 'identity.json'))!;
    const api = new ApiClient({ addrs: [c.addr], tls: { ca: id.ca_certs, cert: id.cert, key: id.key } });
    const admin = new AdminClient(api);
    try {
      const names = Array.from({ length: 12 }, (_, i) => `paged-${String(i).padStart(2, '0')}`);
      for (const name of names)
        await api.call('POST', '/v1/admin/resources', { resource: { kind: 'role', metadata: { name }, spec: {} } });
      let headers = 0;
      const first = await api.call<{ next?: string }>('GET', '/v1/admin/resources/roles?limit=5', undefined, {
        onHeaders: (h) => void (h[NEXT_PAGE_HEADER] && headers++),
      });
      assert.equal(headers, 1);
      assert.ok(first.next);
      const sizes: number[] = [];
      const seen: string[] = [];
      for await (const items of admin.pages('roles', { limit: 5 })) {
        sizes.push(items.length);
        seen.push(...items.map((r) => r.metadata.name));
      }
      assert.ok(sizes.length >= 3 && sizes.slice(0, -1).every((n) => n === 5), `pages of ${sizes.join(', ')}`);
      assert.deepEqual(seen, [...seen].sort(), 'in key order');
      assert.equal(new Set(seen).size, seen.length, 'each once');
      assert.deepEqual(
        seen.filter((n) => n.startsWith('paged-')),
        names,
      );
    } finally {
      admin.close();
    }
  });

  it('status prints the cluster name and the CA pin mwi start printed', async () => {
    assert.match(await c.tctlOk(['status']), new RegExp(`Cluster\\s+tctl\\.example[\\s\\S]*CA pin\\s+${c.caPin}`));
    const json = JSON.parse(await c.tctlOk(['status', '--format', 'json']));
    assert.equal(json.ca_pin, c.caPin);
  });

  it('create -f takes several resources; get prints them back as YAML and JSON; --force replaces', async () => {
    const file = join(c.dir, 'res.yaml');
    writeFileSync(
      file,
      'kind: role\nversion: v7\nmetadata: { name: ops }\nspec:\n  allow: { logins: [ops] }\n---\nkind: bot\n' +
        'version: v1\nmetadata: { name: b1 }\nspec: { roles: [ops] }\n',
    );
    assert.match(await c.tctlOk(['create', '-f', file]), /role "ops" has been created\nbot "b1" has been created/);
    // (-f means --force since issue #11, as in Teleport: a plain create is the one that refuses)
    const dup = await c.tctl(['create', file]);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /role "ops" already exists \(use --force to replace it\)/);
    await c.tctlOk(['create', '-f', file, '--force']);
    assert.match(await c.tctlOk(['get', 'role/ops']), /kind: role\nversion: v7\nmetadata:\n {2}name: ops/);
    const bots = JSON.parse(await c.tctlOk(['get', 'bots', '--format', 'json']));
    assert.deepEqual(
      bots.map((b: any) => b.metadata.name),
      ['b1'],
    );
  });

  it('rejects a bad resource naming the field', async () => {
    const file = join(c.dir, 'bad.yaml');
    writeFileSync(file, 'kind: role\nversion: v7\nmetadata: { name: "bad name" }\nspec: {}\n');
    const r = await c.tctl(['create', '-f', file]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /metadata\.name: expected letters/);
    writeFileSync(file, 'kind: rol\nmetadata: { name: x }\n');
    assert.match((await c.tctl(['create', '-f', file])).stderr, /kind: unknown or missing resource kind "rol"/);
    writeFileSync(
      file,
      'kind: token\nversion: v2\nmetadata: { name: short }\nspec: { join_method: token, bot_name: b1 }\n',
    );
    assert.match(
      (await c.tctl(['create', '-f', file])).stderr,
      /metadata\.name: a join secret must be at least 16 characters/,
    );
  });

  it('tokens: add, ls shows the id and never the secret, rm by id; a token from a file joins', async () => {
    const added = JSON.parse(
      await c.tctlOk(['tokens', 'add', '--type=bot', '--bot-name', 'b1', '--ttl', '10m', '--format', 'json']),
    );
    const ls = await c.tctlOk(['tokens', 'ls']);
    assert.match(ls, new RegExp(added.id));
    assert.doesNotMatch(ls, new RegExp(added.token));
    await c.tctlOk(['tokens', 'rm', added.id]);
    assert.doesNotMatch(await c.tctlOk(['tokens', 'ls']), new RegExp(added.id));
    // a user-chosen secret in a resource file, and removal by the secret itself
    const file = join(c.dir, 'tok.yaml');
    writeFileSync(
      file,
      'kind: token\nversion: v2\nmetadata: { name: my-own-secret-0123456789 }\n' +
        'spec: { join_method: token, bot_name: b1 }\n',
    );
    await c.tctlOk(['create', '-f', file]);
    const r = await cli('tbot', [
      'start',
      ...tbotFlags(c, 'my-own-secret-0123456789', join(c.dir, 'tb'), join(c.dir, 'to')),
      '--oneshot',
    ]);
    assert.equal(r.code, 0, r.stderr);
  });

  it('bots: add prints the token, the CA pin and a tbot start line; update; instances ls; rm', async () => {
    await c.tctlOk(['create', '-f', join(c.dir, 'res.yaml')]).catch(() => undefined);
    const out = await c.tctlOk(['bots', 'add', 'b2', '--roles', 'ops', '--logins', 'alice']);
    const token = /The bot token: ([0-9a-f]{32})/.exec(out)?.[1];
    assert.ok(token, out);
    assert.match(out, new RegExp(`CA pin: ${c.caPin}`));
    // the token goes through a file, never tbot's argv (issue #9, finding 13: this line used to be --token=TOKEN)
    assert.match(
      out,
      new RegExp(
        `echo ${token} > tbot-token\\)\\n> tbot start \\\\\\n\\s+--auth-server=${c.addr.replace(/\./g, '\\.')} \\\\\\n\\s+--join-method=token \\\\\\n\\s+--token="\\$PWD/tbot-token"`,
      ),
    );
    await c.tctlOk(['bots', 'update', 'b2', '--add-logins', 'bob']);
    assert.match(await c.tctlOk(['bots', 'ls']), /b2\s+ops\s+alice,bob/);
    const r = await cli('tbot', [
      'start',
      ...tbotFlags(c, token, join(c.dir, 'b2'), join(c.dir, 'b2-out')),
      '--oneshot',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const inst = JSON.parse(await c.tctlOk(['bots', 'instances', 'ls', 'b2', '--format', 'json']));
    assert.equal(inst.length, 1);
    assert.equal(inst[0].status.initial_authentication.join_method, 'token');
    assert.equal(inst[0].status.latest_heartbeats[0].one_shot, true);
    assert.match(await c.tctlOk(['bots', 'instances', 'ls']), /b2\s+[0-9a-f-]{36}\s+token/);
    // one instance, as Teleport names it (BOT/ID), or by its id alone
    const id = inst[0].spec.instance_id as string;
    for (const name of [`b2/${id}`, id]) {
      assert.equal(
        JSON.parse(await c.tctlOk(['get', `bot_instance/${name}`, '--format', 'json']))[0].spec.instance_id,
        id,
      );
    }
    await c.tctlOk(['bots', 'rm', 'b2']);
    assert.doesNotMatch(await c.tctlOk(['bots', 'ls']), /b2/);
  });

  it('ca export prints what consumers read', async () => {
    assert.match(
      await c.tctlOk(['ca', 'export', '--type', 'ssh-user']),
      /^ssh-ed25519 AAAA\S+ tctl\.example ssh-user\n$/,
    );
    assert.match(
      await c.tctlOk(['ca', 'export', '--type', 'ssh-host']),
      /^@cert-authority \* ssh-ed25519 AAAA\S+ tctl\.example ssh-host\n$/,
    );
    assert.match(await c.tctlOk(['ca', 'export', '--type', 'tls-host']), /^-----BEGIN CERTIFICATE-----/);
    const bad = await c.tctl(['ca', 'export', '--type', 'spiffy']);
    assert.match(
      bad.stderr,
      /type: unknown CA type "spiffy" \(expected one of: tls-user, tls-host, ssh-user, ssh-host\)/,
    );
  });

  it('locks: add, ls, rm', async () => {
    const id = /"(.+)"/.exec(await c.tctlOk(['locks', 'add', '--bot', 'b1', '--message', 'm', '--ttl', '1h']))![1]!;
    assert.match(await c.tctlOk(['locks', 'ls']), new RegExp(`${id}\\s+user:bot-b1\\s+m`));
    await c.tctlOk(['locks', 'rm', id]);
    assert.doesNotMatch(await c.tctlOk(['locks', 'ls']), new RegExp(id));
    assert.equal((await c.tctl(['locks', 'add'])).code, 2);
  });

  it('audit ls shows recent events; bad usage exits 2', async () => {
    const events = JSON.parse(await c.tctlOk(['audit', 'ls', '--format', 'json', '--type', 'bot.join']));
    assert.ok(events.length >= 2 && events.every((e: any) => e.event === 'bot.join'));
    const typo = await c.tctl(['audit', 'ls', '--type', 'bot.joins']);
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /unknown event type "bot.joins" \(did you mean bot.join\?\) \(one of: bot.join, /);
    assert.equal((await c.tctl(['frobnicate'])).code, 2);
    assert.equal((await c.tctl(['status', '--format', 'xml'])).code, 2);
    const noServer = await cli('tctl', ['--data-dir', join(c.dir, 'nothing-here'), 'status']);
    assert.equal(noServer.code, 2);
    assert.match(noServer.stderr, /no admin identity at .*start the Auth Service with this --data-dir first/);
  });

  it('bots add --token with a platform token points to its deploy guide (a CI job is not a VM)', async () => {
    const spec = join(c.dir, 'gh-spec.yaml');
    writeFileSync(spec, 'github:\n  allow:\n    - repository: example-org/app\n');
    await c.tctlOk(['create', clusterFile(c, 'gh-role.yaml', roleYaml('gh-role', 'deploy'))]);
    const made = JSON.parse(
      await c.tctlOk([
        'tokens',
        'add',
        '--type=bot',
        '--bot-name',
        'gh-bot',
        '--join-method',
        'github',
        '--spec',
        spec,
        '--format',
        'json',
      ]),
    ) as { token: string };
    const out = await c.tctlOk(['bots', 'add', 'gh-bot', '--roles', 'gh-role', '--token', made.token]);
    assert.match(out, /follow docs\/deploy\/github-actions\.md \(the action\) instead/);
    const plain = await c.tctlOk(['bots', 'add', 'vm-bot', '--roles', 'gh-role']);
    assert.doesNotMatch(plain, /docs\/deploy/);
  });

  it('a reader that closes the pipe early (tctl ... | head) ends it quietly: exit 0, no stack trace', async () => {
    const child = spawn(process.execPath, [join(CLI_DIR, 'tctl.js'), '--data-dir', c.dataDir, 'status'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.destroy(); // closed before tctl writes a byte
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    assert.equal(await exited(child), 0, stderr);
    assert.doesNotMatch(stderr, /EPIPE|Error/);
  });

  it('--auth-server with --identity works like --data-dir; a bot identity file is not an admin', async () => {
    const r = await cli('tctl', [
      '--auth-server',
      c.addr,
      '--identity',
      join(c.dataDir, 'admin', 'identity.json'),
      'status',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const bot = await cli('tctl', ['--auth-server', c.addr, '--identity', join(c.dir, 'to', 'identity'), 'status']);
    assert.equal(bot.code, 1);
    assert.match(bot.stderr, /the admin API needs an admin identity/);
    // Teleport's -i and environment variables, with a data dir that has neither the address nor an identity
    const empty = join(c.dir, 'no-such-data-dir');
    const short = await cli('tctl', ['--data-dir', empty, '--auth-server', c.addr, '-i', adminIdentity(c), 'status']);
    assert.equal(short.code, 0, short.stderr);
    const env = { TELEPORT_AUTH_SERVER: c.addr, TELEPORT_IDENTITY_FILE: adminIdentity(c) };
    const fromEnv = await cli('tctl', ['--data-dir', empty, 'status'], { env });
    assert.equal(fromEnv.code, 0, fromEnv.stderr);
    assert.match(fromEnv.stdout, /CA pin/);
    const flagWins = await cli('tctl', ['--data-dir', empty, '--identity', join(empty, 'x.json'), 'status'], { env });
    assert.equal(flagWins.code, 2);
    assert.match(flagWins.stderr, /x\.json/);
  });
});

describe('mwi start configuration', () => {
  it('-c mwi.yaml is read; an unknown key is an error naming it; a bad flag exits 2', async () => {
    const { tempDir } = await import('../helpers/procs.js');
    const d = tempDir('mwicfg');
    try {
      writeFileSync(
        join(d.path, 'mwi.yaml'),
        `cluster_name: from-file\ndata_dir: ${join(d.path, 'data')}\nlisten: 127.0.0.1:0\nlisen: x\n`,
      );
      const r = await cli('mwi', ['start', '-c', join(d.path, 'mwi.yaml')]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /mwi\.yaml: lisen: unknown key/);
      assert.equal((await cli('mwi', ['start', '--lisen', 'x'])).code, 2);
      assert.equal(
        (await cli('mwi', ['start', '--data-dir', join(d.path, 'data'), '--listen', '256.0.0.1:99999'])).code,
        2,
      );
    } finally {
      d.cleanup();
    }
  });
});

/** Teleport's tctl command habits (issue #11), against a real Auth Service. */
describe('tctl as Teleport users call it', () => {
  let c: TestCluster;
  const file = (name: string, text: string) => clusterFile(c, name, text);
  const role = roleYaml;
  /** An EDITOR: a shell script that runs `body` with the file as $1. */
  const editor = (name: string, body: string) => {
    const path = file(name, `#!/bin/sh\n${body}\n`);
    chmodSync(path, 0o755);
    return path;
  };
  const updates = () => c.audit().filter((e) => e.event === 'resource.updated').length;
  before(async () => {
    c = await startCluster('teleport-habits.example');
    await c.tctlOk(['create', file('base.yaml', `${role('dev', 'dev')}---\n${role('ops', 'ops')}`)]);
    await c.tctlOk(['bots', 'add', 'robot', '--roles', 'dev']);
  });
  after(async () => c?.stop());

  it('create FILE creates; -f/--force replaces (created or updated, as Teleport says); stdin when FILE is - or absent', async () => {
    const f = file('r1.yaml', role('r1', 'a'));
    assert.equal(await c.tctlOk(['create', f]), 'role "r1" has been created\n');
    const dup = await c.tctl(['create', f]);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /role "r1" already exists \(use --force to replace it\)/);
    assert.equal(await c.tctlOk(['create', '--force', f]), 'role "r1" has been updated\n');
    const stdin = (args: string[], input: string) =>
      run(process.execPath, [join(CLI_DIR, 'tctl.js'), '--data-dir', c.dataDir, ...args], { input });
    const piped = await stdin(['create', '-f'], role('r1', 'b'));
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(piped.stdout, 'role "r1" has been updated\n');
    assert.equal(piped.stderr, '', 'no warning: -f is not followed by a file');
    assert.equal((await stdin(['create', '-'], role('r2', 'b'))).stdout, 'role "r2" has been created\n');
    assert.match(await c.tctlOk(['get', 'role/r1']), /logins:\n\s+- b\n/);
  });

  it("create -f FILE (mwi's old form) still reads FILE; replacing now, it warns what changed", async () => {
    const f = file('r3.yaml', role('r3', 'a'));
    const fresh = await c.tctl(['create', '-f', f]);
    assert.equal(fresh.stdout, 'role "r3" has been created\n');
    assert.equal(fresh.stderr, '', 'nothing replaced, nothing to warn about');
    writeFileSync(f, role('r3', 'changed'));
    const r = await c.tctl(['create', '-f', f]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'role "r3" has been updated\n');
    assert.match(
      r.stderr,
      /^warning: -f means --force, as in Teleport's tctl: .*r3\.yaml is read as the FILE argument/,
    );
    assert.match(r.stderr, /Write "tctl create .*r3\.yaml" to create only/);
    assert.match(await c.tctlOk(['get', 'role/r3']), /- changed\n/);
  });

  it('get: comma lists, plural kinds, all; an empty list is []', async () => {
    const two = await c.tctlOk(['get', 'role/dev,bot/robot']);
    const docs = two.split('---\n').map((d) => parse(d));
    assert.deepEqual(
      docs.map((d) => `${d.kind}/${d.metadata.name}`),
      ['role/dev', 'bot/robot'],
    );
    const json = JSON.parse(await c.tctlOk(['get', 'roles,bots', '--format', 'json']));
    assert.ok(json.some((r: any) => r.kind === 'role') && json.some((r: any) => r.kind === 'bot'));
    assert.equal(await c.tctlOk(['get', 'locks']), '[]\n');
    assert.equal(await c.tctlOk(['get', 'bot_instances']), '[]\n');
    // all: what create takes back; the token-method token (only its hash is kept) is left out, with a note
    await c.tctlOk([
      'create',
      file('lk.yaml', 'kind: lock\nmetadata: { name: lk }\nspec: { target: { user: bot-x } }\n'),
    ]);
    const all = await c.tctl(['get', 'all']);
    assert.equal(all.code, 0, all.stderr);
    const kinds = all.stdout.split('---\n').map((d) => parse(d).kind);
    assert.deepEqual([...new Set(kinds)], ['role', 'bot', 'lock']);
    assert.match(all.stderr, /note: 1 join token\(s\) .* are left out: mwi stores only their hash/);
    const bad = await c.tctl(['get', 'role/dev,rolez']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /RESOURCES: unknown resource kind "rolez"/);
    assert.equal((await c.tctl(['get', 'role/dev,,bots'])).code, 2);
  });

  it('edit KIND/NAME: $EDITOR (then $VISUAL) edits; saved changes apply as create -f; unchanged writes nothing', async () => {
    const before = updates();
    const same = await cli('tctl', ['--data-dir', c.dataDir, 'edit', 'role/ops'], { env: { EDITOR: 'true' } });
    assert.equal(same.code, 0, same.stderr);
    assert.equal(same.stdout, 'no changes made to role "ops"\n');
    assert.equal(updates(), before, 'nothing written');
    const change = editor('ed-login.sh', 'sed -i "s/- ops$/- ops-edited/" "$1"');
    const r = await cli('tctl', ['--data-dir', c.dataDir, 'edit', 'role/ops'], { env: { EDITOR: change } });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'role "ops" has been updated\n');
    assert.match(await c.tctlOk(['get', 'role/ops']), /- ops-edited\n/);
    assert.equal(updates(), before + 1);
    const visual = await cli('tctl', ['--data-dir', c.dataDir, 'edit', 'role/ops'], {
      env: { EDITOR: '', VISUAL: editor('ed-v.sh', 'sed -i "s/ops-edited/ops-visual/" "$1"') },
    });
    assert.equal(visual.code, 0, visual.stderr);
    assert.match(await c.tctlOk(['get', 'role/ops']), /- ops-visual\n/);
  });

  it('edit: a result that does not validate is refused and the file is kept for the user', async () => {
    const bad = editor('ed-bad.sh', 'sed -i "s/logins:/logins: 5/" "$1"');
    const r = await cli('tctl', ['--data-dir', c.dataDir, 'edit', 'role/dev'], { env: { EDITOR: bad } });
    assert.notEqual(r.code, 0);
    const kept = /your edits are kept in (\S+\.yaml)\)/.exec(r.stderr)?.[1];
    assert.ok(kept, r.stderr);
    assert.match(r.stderr, /spec\.allow\.logins/);
    assert.match(readFileSync(kept, 'utf8'), /logins: 5/);
    assert.equal(statSync(kept).mode & 0o777, 0o600);
    assert.match(await c.tctlOk(['get', 'role/dev']), /logins:\n\s+- dev\n/, 'unchanged');
    rmSync(dirname(kept), { recursive: true, force: true });
    const rename = editor('ed-rename.sh', 'sed -i "s/name: dev/name: dev2/" "$1"');
    const rr = await cli('tctl', ['--data-dir', c.dataDir, 'edit', 'role/dev'], { env: { EDITOR: rename } });
    assert.equal(rr.code, 2);
    assert.match(rr.stderr, /keep its kind and metadata\.name .*your edits are kept in/);
    rmSync(dirname(/kept in (\S+\.yaml)\)/.exec(rr.stderr)![1]!), { recursive: true, force: true });
    assert.equal((await c.tctl(['get', 'role/dev2'])).code, 1);
    const inst = await c.tctl(['edit', 'bot_instance/robot/x']);
    assert.equal(inst.code, 2);
    assert.match(inst.stderr, /bot instances are made by joins/);
  });

  it("lock: one target (--user bot-NAME, --bot-instance-id, --join-token), --expires or --ttl, Teleport's line", async () => {
    const created = /^Created a lock with name "([0-9a-f-]{36})"\.\n$/;
    const id = created.exec(
      await c.tctlOk(['lock', '--user', 'bot-suspect', '--message', 'incident 7', '--ttl', '1h']),
    );
    assert.ok(id);
    const lock = JSON.parse(await c.tctlOk(['get', `lock/${id[1]}`, '--format', 'json']))[0];
    assert.deepEqual(lock.spec.target, { user: 'bot-suspect' });
    assert.equal(lock.spec.message, 'incident 7');
    assert.ok(Math.abs(Date.parse(lock.spec.expires) - Date.now() - 3_600_000) < 60_000);
    const at = created.exec(
      await c.tctlOk(['lock', '--bot-instance-id', 'inst-1', '--expires', '2031-02-03T04:05:06Z']),
    )![1]!;
    const l2 = JSON.parse(await c.tctlOk(['get', `lock/${at}`, '--format', 'json']))[0];
    assert.equal(l2.spec.expires, '2031-02-03T04:05:06.000Z');
    assert.deepEqual(l2.spec.target, { bot_instance_id: 'inst-1' });
    // a token-method token named by its secret is locked by its id (the name joins record)
    const tok = JSON.parse(await c.tctlOk(['tokens', 'add', '--type=bot', '--bot-name', 'robot', '--format', 'json']));
    const byToken = created.exec(await c.tctlOk(['lock', '--join-token', tok.token]))![1]!;
    const l3 = JSON.parse(await c.tctlOk(['get', `lock/${byToken}`, '--format', 'json']))[0];
    assert.deepEqual(l3.spec.target, { join_token: tok.id });
    const refused: Array<[string[], RegExp]> = [
      [['--user', 'bot-suspect', '--bot-instance-id', 'x'], /an mwi lock has one target \(Teleport's may combine/],
      [['--user', 'al ice'], /--user: mwi's users are bots and operators: lock bot NAME as --user bot-NAME/],
      [['--user', 'admin'], /--user: the local admin identity cannot be locked/],
      [['--role', 'admin'], /--role: mwi locks bots, their instances and join tokens only/],
      [
        ['--user', 'bot-suspect', '--expires', '2031-01-01T00:00:00Z', '--ttl', '1h'],
        /give --expires or --ttl, not both/,
      ],
      [['--user', 'bot-suspect', '--expires', 'tomorrow'], /--expires: expected an RFC 3339 time/],
      [[], /give the lock's target/],
    ];
    for (const [args, message] of refused) {
      const r = await c.tctl(['lock', ...args]);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, message);
    }
    // locks add, mwi's own form, takes --expires too
    const la = created.exec(await c.tctlOk(['locks', 'add', '--bot', 'suspect', '--expires', '2031-01-01T00:00:00Z']));
    assert.ok(la);
  });

  it('bots add --max-session-ttl; --token binds only an existing token of the same bot', async () => {
    await c.tctlOk(['bots', 'add', 'capped', '--roles', 'dev', '--max-session-ttl', '2h']);
    assert.equal(JSON.parse(await c.tctlOk(['get', 'bot/capped', '--format', 'json']))[0].spec.max_session_ttl, '2h');
    await c.tctlOk([
      'create',
      file(
        'gh.yaml',
        'kind: token\nversion: v2\nmetadata: { name: gh-robot }\nspec:\n  join_method: github\n  bot_name: robot\n' +
          '  allow: [{ repository: octo/app }]\n',
      ),
    ]);
    const other = await c.tctl(['bots', 'add', 'thief', '--roles', 'dev', '--token', 'gh-robot']);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /token "gh-robot" is for bot "robot", not "thief"/);
    const missing = await c.tctl(['bots', 'add', 'thief', '--roles', 'dev', '--token', 'nope']);
    assert.match(missing.stderr, /token "nope" not found/);
    assert.equal((await c.tctl(['get', 'bot/thief'])).code, 1, 'no bot was written');
  });

  it('bots instances add BOT: a new single-use token that joins; --token shows how to join; show BOT/ID', async () => {
    const out = JSON.parse(await c.tctlOk(['bots', 'instances', 'add', 'robot', '--format', 'json']));
    assert.equal(out.bot_name, 'robot');
    assert.equal(out.join_method, 'token');
    const text = await c.tctlOk(['bots', 'instances', 'join', 'robot']);
    assert.match(text, /The bot token: [0-9a-f]{32}\n[\s\S]*> tbot start/);
    const r = await cli('tbot', [
      'start',
      ...tbotFlags(c, out.token, join(c.dir, 'inst-store'), join(c.dir, 'inst-out')),
      '--oneshot',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const [inst] = JSON.parse(await c.tctlOk(['bots', 'instances', 'ls', 'robot', '--format', 'json']));
    const id = inst.spec.instance_id as string;
    const shown = await c.tctlOk(['bots', 'instances', 'show', `robot/${id}`]);
    assert.match(shown, new RegExp(`^Bot: robot\\nID:  ${id}\\n`));
    assert.match(shown, /Initial authentication: .*join method token/);
    assert.match(shown, /Latest heartbeat: +\S.* v\d+\.\d+\.\d+ one-shot /);
    assert.match(shown, new RegExp(`tctl get bot_instance/robot/${id}`));
    assert.equal(
      JSON.parse(await c.tctlOk(['bots', 'instances', 'show', `robot/${id}`, '--format', 'json'])).spec.instance_id,
      id,
    );
    const bound = await c.tctlOk(['bots', 'instances', 'add', 'robot', '--token', 'gh-robot']);
    assert.match(bound, /existing token gh-robot \(join method github; expires never\)/);
    assert.match(
      bound,
      /> tbot start identity \\\n\s+--auth-server=\S+ \\\n\s+--join-method=github \\\n\s+--token=gh-robot/,
    );
    const wrongBot = await c.tctl(['bots', 'instances', 'add', 'capped', '--token', 'gh-robot']);
    assert.equal(wrongBot.code, 2);
    assert.match(wrongBot.stderr, /--token: token "gh-robot" is for bot "robot"/);
    assert.equal((await c.tctl(['bots', 'instances', 'add', 'no-such-bot'])).code, 1);
  });

  it('tokens add --value (kept as a hash, said so), --labels, --format yaml; other --type values say why', async () => {
    const secret = 'chosen-secret-0123456789';
    const text = await c.tctlOk(['tokens', 'add', '--type=bot', '--bot-name', 'robot', '--value', secret]);
    assert.match(text, new RegExp(`The invite token: ${secret}\\n`));
    assert.match(text, /mwi stores only a hash of the value you chose: it is not shown again/);
    assert.doesNotMatch(await c.tctlOk(['tokens', 'ls']), new RegExp(secret));
    const r = await cli('tbot', [
      'start',
      ...tbotFlags(c, secret, join(c.dir, 'v-store'), join(c.dir, 'v-out')),
      '--oneshot',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const y = parse(
      await c.tctlOk([
        'tokens',
        'add',
        '--type=bot',
        '--bot-name',
        'robot',
        '--labels',
        'env=prod,team=ci',
        '--format',
        'yaml',
      ]),
    );
    assert.equal(y.bot_name, 'robot');
    const stored = JSON.parse(await c.tctlOk(['get', `token/${y.id}`, '--format', 'json']))[0];
    assert.deepEqual(stored.metadata.labels, { env: 'prod', team: 'ci' });
    // Teleport's --with-secrets has no counterpart: said why, exit 2
    const ws = await c.tctl(['get', 'tokens', '--with-secrets']);
    assert.equal(ws.code, 2);
    assert.match(ws.stderr, /--with-secrets: mwi has no secrets to show: join secrets are stored only as hashes/);
    // what the Auth Service changed in a --spec reaches the terminal in text mode too
    const specFile = join(c.dir, 'gh-spec.yaml');
    writeFileSync(specFile, 'allow:\n  - repository: octo/app\n');
    const gh = await c.tctl([
      'tokens',
      'add',
      '--type=bot',
      '--bot-name',
      'robot',
      '--join-method',
      'github',
      '--spec',
      specFile,
    ]);
    assert.equal(gh.code, 0, gh.stderr);
    assert.match(gh.stderr, /note: token "[^"]+": spec\.allow is deprecated for join method github/);
    const node = await c.tctl(['tokens', 'add', '--type=node,bot', '--bot-name', 'robot']);
    assert.equal(node.code, 2);
    assert.match(node.stderr, /--type: mwi makes bot join tokens only/);
    const labels = await c.tctl(['tokens', 'add', '--type=bot', '--bot-name', 'robot', '--labels', 'novalue']);
    assert.equal(labels.code, 2);
    assert.match(labels.stderr, /--labels: expected KEY=VALUE pairs/);
    const short = await c.tctl(['tokens', 'add', '--type=bot', '--bot-name', 'robot', '--value', 'short']);
    assert.match(short.stderr, /a join secret must be at least 16 characters/);
  });

  it("auth export --type maps Teleport's CA names; others list what mwi exports", async () => {
    const user = await c.tctlOk(['auth', 'export', '--type', 'user']);
    assert.match(user, /^cert-authority ssh-ed25519 AAAA\S+ teleport-habits\.example ssh-user\n$/);
    assert.equal(
      await c.tctlOk(['auth', 'export', '--type', 'openssh']),
      await c.tctlOk(['ca', 'export', '--type', 'ssh-user']),
    );
    assert.equal(
      await c.tctlOk(['auth', 'export', '--type', 'host']),
      await c.tctlOk(['ca', 'export', '--type', 'ssh-host']),
    );
    for (const t of ['tls-host', 'tls-user'])
      assert.equal(await c.tctlOk(['auth', 'export', '--type', t]), await c.tctlOk(['ca', 'export', '--type', t]));
    const windows = await c.tctl(['auth', 'export', '--type', 'windows']);
    assert.equal(windows.code, 2);
    assert.match(
      windows.stderr,
      /--type: mwi has no "windows" CA to export .*mwi exports user, host, openssh, tls-user, tls-host, db-client, db/,
    );
  });
});
