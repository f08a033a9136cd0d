import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { cli } from '../helpers/procs.js';
import { AdminClient } from '../../src/api/admin-client.js';
import { ApiClient } from '../../src/api/client.js';
import { readIdentityFile } from '../../src/api/local.js';
import { NEXT_PAGE_HEADER } from '../../src/api/wire.js';

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
    assert.equal((await c.tctl(['frobnicate'])).code, 2);
    assert.equal((await c.tctl(['status', '--format', 'xml'])).code, 2);
    const noServer = await cli('tctl', ['--data-dir', join(c.dir, 'nothing-here'), 'status']);
    assert.equal(noServer.code, 2);
    assert.match(noServer.stderr, /no admin identity at .*start the Auth Service with this --data-dir first/);
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
