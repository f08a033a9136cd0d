// tctl create FILE is all or nothing (one transaction; a refused document names itself and exits
// 2); tctl edit refuses to write over a change made while the editor was open; a token secret of
// the id form is refused where it is made.
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { clusterFile, roleYaml, startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { cli, CLI_DIR } from '../helpers/procs.js';

describe('tctl create and edit write all or nothing', () => {
  let c: TestCluster;
  const file = (name: string, text: string) => clusterFile(c, name, text);
  const role = roleYaml;
  const bot = (name: string, role: string) =>
    `kind: bot\nversion: v1\nmetadata: { name: ${name} }\nspec: { roles: [${role}] }\n`;
  const badToken =
    'kind: token\nversion: v2\nmetadata: { name: gh-bad }\nspec:\n  join_method: github\n  bot_name: b\n' +
    '  github:\n    allow: [{ repository: octo/app, branch: main }]\n';
  const exists = async (ref: string) => (await c.tctl(['get', ref])).code === 0;
  before(async () => {
    c = await startCluster('apply.example');
  });
  after(async () => c?.stop());

  it('a 3-document file whose third is refused: nothing from it exists, exit 2, the error names document 3', async () => {
    const f = file('three.yaml', `${role('app', 'deploy')}---\n${bot('app-bot', 'app')}---\n${badToken}`);
    const r = await c.tctl(['create', f]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^ERROR: document 3 \(token "gh-bad"\): spec\.github\.allow\[0\]\.branch: unknown field/);
    assert.equal(r.stdout, '', 'no "has been created" line: nothing was');
    assert.equal(await exists('role/app'), false);
    assert.equal(await exists('bot/app-bot'), false);
    assert.equal(await exists('token/gh-bad'), false);
    // the same file without its bad document applies whole
    const good = file('two.yaml', `${role('app', 'deploy')}---\n${bot('app-bot', 'app')}`);
    assert.equal(await c.tctlOk(['create', good]), 'role "app" has been created\nbot "app-bot" has been created\n');
  });

  it('--force over existing resources: when one document is refused, the stored versions stay', async () => {
    const before = await c.tctlOk(['get', 'role/app,bot/app-bot', '--format', 'json']);
    const f = file(
      'force.yaml',
      `${role('app', 'changed')}---\n${bot('app-bot', 'missing-role')}---\n${role('other', 'x')}`,
    );
    const r = await c.tctl(['create', '--force', f]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /document 2 \(bot "app-bot"\): spec\.roles: role "missing-role" does not exist/);
    assert.equal(await c.tctlOk(['get', 'role/app,bot/app-bot', '--format', 'json']), before, 'old versions kept');
    assert.equal(await exists('role/other'), false);
    // without --force, one that exists refuses the whole file (exit 1, as any conflict)
    const dup = await c.tctl(['create', file('dup.yaml', `${role('fresh', 'x')}---\n${role('app', 'changed')}`)]);
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /document 2: role "app" already exists \(use --force to replace it\)/);
    assert.equal(await exists('role/fresh'), false);
  });

  it('a file over the 64 KiB of other requests is one request too', async () => {
    const roles = Array.from({ length: 150 }, (_, i) =>
      role(`bulk-${i}`, 'x').replace('metadata: {', `metadata: { description: "${'d'.repeat(600)}",`),
    );
    const f = file('bulk.yaml', roles.join('---\n'));
    assert.ok(readFileSync(f).length > 90_000);
    const out = await c.tctlOk(['create', f]);
    assert.equal(out.split('\n').filter(Boolean).length, 150);
    assert.equal(
      JSON.parse(await c.tctlOk(['get', 'roles', '--format', 'json'])).filter((r: any) =>
        r.metadata.name.startsWith('bulk-'),
      ).length,
      150,
    );
  });

  it('a file past one request (10,000 documents, 8 MiB as JSON) is refused before sending, naming it: split it', async () => {
    const many = file('many.yaml', Array.from({ length: 10_001 }, (_, i) => role(`m-${i}`, 'x')).join('---\n'));
    const r = await c.tctl(['create', many]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`^ERROR: ${many}: 10001 documents, more than the 10000 .*split the file`));
    assert.equal(await exists('role/m-0'), false);
    // ~100 KB of YAML that aliases expand to ~10 MB
    const big = 'l'.repeat(100_000);
    const bomb = file(
      'aliases.yaml',
      `kind: role\nversion: v7\nmetadata: { name: aliased, description: &d "${big}" }\nspec:\n  allow:\n` +
        `    logins: [${Array.from({ length: 99 }, () => '*d').join(', ')}]\n`,
    );
    assert.ok(readFileSync(bomb).length < 200_000);
    const a = await c.tctl(['create', bomb]);
    assert.equal(a.code, 2, a.stderr);
    assert.match(
      a.stderr,
      /aliases.yaml: the resources come to \d+ bytes as JSON \(YAML aliases expanded\), more than the 8388608/,
    );
    assert.match(a.stderr, /the limit is per file .*split the file/);
  });

  it('edit: a change made meanwhile by someone else is not written over; the edit is kept in its file', async () => {
    await c.tctlOk(['create', file('ed.yaml', role('edited', 'first'))]);
    const theirs = file('theirs.yaml', role('edited', 'theirs'));
    // the editor: another administrator's tctl writes the role, then this edit changes the file
    const editor = file(
      'race-editor.sh',
      `#!/bin/sh\n"${process.execPath}" "${join(CLI_DIR, 'tctl.js')}" --data-dir "${c.dataDir}" create --force ` +
        `"${theirs}" >/dev/null || exit 9\nsed -i "s/- first$/- mine/" "$1"\n`,
    );
    chmodSync(editor, 0o755);
    const r = await cli('tctl', ['--data-dir', c.dataDir, 'edit', 'role/edited'], { env: { EDITOR: editor } });
    assert.equal(r.code, 1, r.stderr);
    const m =
      /^ERROR: role "edited" was changed by someone else while you edited it; your edit is kept in (\S+): run tctl edit again\n$/.exec(
        r.stderr,
      );
    assert.ok(m, r.stderr);
    assert.match(readFileSync(m[1]!, 'utf8'), /- mine\n/);
    assert.match(await c.tctlOk(['get', 'role/edited']), /- theirs\n/, 'their change stands');
    rmSync(dirname(m[1]!), { recursive: true, force: true });
    // without a race the same edit applies
    const plain = file('plain-editor.sh', '#!/bin/sh\nsed -i "s/- theirs$/- mine/" "$1"\n');
    chmodSync(plain, 0o755);
    const ok = await cli('tctl', ['--data-dir', c.dataDir, 'edit', 'role/edited'], { env: { EDITOR: plain } });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(await c.tctlOk(['get', 'role/edited']), /- mine\n/);
  });

  it('edit bot: the server-written status is not in the file, so a plain edit prints no note', async () => {
    await c.tctlOk([
      'create',
      file('edit-bot.yaml', `${role('eb-a', 'x')}---\n${role('eb-b', 'y')}---\n${bot('eb', 'eb-a')}`),
    ]);
    // the editor refuses (exit 7) a file that shows the status; else it swaps the role
    const editor = file(
      'bot-editor.sh',
      '#!/bin/sh\ngrep -q "^status:" "$1" && exit 7\nsed -i "s/- eb-a$/- eb-b/" "$1"\n',
    );
    chmodSync(editor, 0o755);
    const r = await cli('tctl', ['--data-dir', c.dataDir, 'edit', 'bot/eb'], { env: { EDITOR: editor } });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /status is written by the Auth Service/);
    assert.match(r.stdout, /bot "eb" has been updated/);
    const after = JSON.parse(await c.tctlOk(['get', 'bot/eb', '--format', 'json'])) as any[];
    assert.deepEqual(after[0].spec.roles, ['eb-b']);
    assert.ok(after[0].status?.uid, 'the uid is kept');
  });

  it('edit: Ctrl-C while the editor is open applies nothing and says where the edit is kept', async () => {
    await c.tctlOk(['create', file('int.yaml', role('interrupted', 'before'))]);
    // the editor changes the file, then Ctrl-C: SIGINT to tctl (the node process above it) and to itself
    const editor = file(
      'int-editor.sh',
      '#!/bin/sh\nsed -i "s/- before$/- during/" "$1"\np=$PPID\n' +
        'while [ "$(cat /proc/$p/comm)" != node ]; do p=$(cut -d" " -f4 /proc/$p/stat); done\n' +
        'kill -INT $p\nsleep 0.3\nkill -INT $$\nsleep 5\n',
    );
    chmodSync(editor, 0o755);
    const r = await cli('tctl', ['--data-dir', c.dataDir, 'edit', 'role/interrupted'], { env: { EDITOR: editor } });
    assert.equal(r.code, 2, `${r.code} ${r.stderr}`);
    const m = /nothing was applied \(your edits are kept in (\S+)\)\n$/.exec(r.stderr);
    assert.ok(m, r.stderr);
    assert.match(readFileSync(m[1]!, 'utf8'), /- during\n/);
    assert.match(await c.tctlOk(['get', 'role/interrupted']), /- before\n/);
    rmSync(dirname(m[1]!), { recursive: true, force: true });
  });

  it('a token secret of the id form (h-<16 hex>) is refused where it is made; the id of a stored one re-applies', async () => {
    const idForm = 'h-00112233445566ff';
    const added = await c.tctl(['tokens', 'add', '--type=bot', '--bot-name', 'app-bot', '--value', idForm]);
    assert.equal(added.code, 2);
    assert.match(
      added.stderr,
      /--value: a join secret may not have the form h-<16 hex>: that form is the id mwi prints/,
    );
    const asFile = file(
      'idform.yaml',
      `kind: token\nversion: v2\nmetadata: { name: ${idForm} }\nspec: { join_method: token, bot_name: app-bot }\n`,
    );
    const created = await c.tctl(['create', asFile]);
    assert.equal(created.code, 2);
    assert.match(created.stderr, new RegExp(`token "${idForm}" not found: .*A join secret of that form is refused`));
    assert.doesNotMatch(await c.tctlOk(['tokens', 'ls']), new RegExp(idForm));
    // tctl get prints a stored token by its id: applied again, it is that token, and its secret still joins
    const secret = 'an-own-secret-0123456789';
    const tok = JSON.parse(
      await c.tctlOk(['tokens', 'add', '--type=bot', '--bot-name', 'app-bot', '--value', secret, '--format', 'json']),
    );
    const exported = file('exported.yaml', await c.tctlOk(['get', `token/${tok.id}`]));
    assert.equal(await c.tctlOk(['create', '--force', exported]), `token "${tok.id}" has been updated\n`);
    const r = await cli('tbot', [
      'start',
      ...tbotFlags(c, secret, join(c.dir, 'id-s'), join(c.dir, 'id-o')),
      '--oneshot',
    ]);
    assert.equal(r.code, 0, r.stderr);
  });
});
