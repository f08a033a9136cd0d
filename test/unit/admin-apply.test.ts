import assert from 'node:assert/strict';
import { it } from 'node:test';
import { tokenId } from '../../src/auth/tokens.js';
import { isMwiError, exitCodeFor } from '../../src/errors.js';
import { testContext } from '../helpers/auth-context.js';

// POST apply (tctl create FILE): every document checked before any is written, the writes one
// transaction conditioned on what was read; a refused document names itself and writes nothing.

const role = (name: string, login = name) => ({
  kind: 'role',
  metadata: { name },
  spec: { allow: { logins: [login] } },
});
const bot = (name: string, roles: string[]) => ({ kind: 'bot', metadata: { name }, spec: { roles } });
const github = (name: string, github: object) => ({
  kind: 'token',
  metadata: { name },
  spec: { join_method: 'github', bot_name: 'b', github },
});
const items = (...resources: object[]) => resources.map((resource) => ({ resource }));

/** The stored keys under the resource prefixes. */
async function keys(t: Awaited<ReturnType<typeof testContext>>): Promise<string[]> {
  const out: string[] = [];
  for (const p of ['/roles/', '/bots/', '/tokens/', '/locks/'])
    out.push(...(await t.ctx.backend.range(p)).map((i) => i.key));
  return out;
}

it('apply: a refused third document writes nothing; the error names it, as a BAD_CONFIG (tctl exits 2)', async () => {
  const t = await testContext();
  const bad = github('gh-x', { allow: [{ repository: 'octo/app', nonsense: 1 }] });
  await assert.rejects(
    t.admin.apply({ resources: items(role('dev'), bot('b', ['dev']), bad), upsert: false }, 'admin'),
    (e: unknown) => {
      assert.ok(isMwiError(e, 'BAD_CONFIG'), String(e));
      assert.match(e.message, /^document 3 \(token "gh-x"\): spec\.github\.allow\[0\]\.nonsense: unknown field/);
      assert.equal(exitCodeFor(e), 2);
      return true;
    },
  );
  assert.deepEqual(await keys(t), []);
  // a file of one document: named by its kind and name, or not at all when it has no kind
  await assert.rejects(
    t.admin.apply({ resources: items({ kind: 'role', metadata: { name: 'bad name' } }), upsert: false }, 'admin'),
    (e: unknown) => isMwiError(e, 'BAD_CONFIG') && /^role "bad name": metadata\.name: expected letters/.test(e.message),
  );
  await assert.rejects(
    t.admin.apply({ resources: items({ kind: 'rol' }), upsert: false }, 'admin'),
    (e: unknown) =>
      isMwiError(e, 'BAD_CONFIG') &&
      e.message ===
        'kind: unknown or missing resource kind "rol" (expected one of: role, bot, token, lock, workload_identity)',
  );
  // a document may use what an earlier one creates (the bot its role); all are written together
  const ok = await t.admin.apply({ resources: items(role('dev'), bot('b', ['dev'])), upsert: false }, 'admin');
  assert.deepEqual(
    ok.items.map((i) => [i.kind, i.name, i.updated]),
    [
      ['role', 'dev', false],
      ['bot', 'b', false],
    ],
  );
});

it('apply --force: the stored versions stay when one document is refused; replaced ones say updated', async () => {
  const t = await testContext();
  await t.admin.apply({ resources: items(role('dev', 'old'), bot('b', ['dev'])), upsert: false }, 'admin');
  const before = await keys(t);
  const revisions = async () => Promise.all(before.map(async (k) => (await t.ctx.backend.get(k))!.revision));
  const was = await revisions();
  await assert.rejects(
    t.admin.apply({ resources: items(role('dev', 'new'), bot('b', ['dev', 'missing'])), upsert: true }, 'admin'),
    /^MwiError: document 2 \(bot "b"\): spec\.roles: role "missing" does not exist$/,
  );
  assert.deepEqual(await revisions(), was, 'nothing written');
  const r = await t.admin.get('role', 'dev');
  assert.deepEqual(r.kind === 'role' && r.spec.allow.logins, ['old']);
  const replaced = await t.admin.apply({ resources: items(role('dev', 'new'), role('ops')), upsert: true }, 'admin');
  assert.deepEqual(
    replaced.items.map((i) => i.updated),
    [true, false],
  );
});

it('apply without --force: one document that exists refuses the file, naming it; the new ones are not written', async () => {
  const t = await testContext();
  await t.admin.create(role('dev'), false, 'admin');
  await assert.rejects(
    t.admin.apply({ resources: items(role('new'), role('dev')), upsert: false }, 'admin'),
    (e: unknown) =>
      isMwiError(e, 'ALREADY_EXISTS') &&
      e.message === 'document 2: role "dev" already exists (use --force to replace it)',
  );
  assert.equal(await t.ctx.backend.get('/roles/new'), undefined);
});

it('apply: the same resource twice in one file is refused naming both documents', async () => {
  const t = await testContext();
  await assert.rejects(
    t.admin.apply({ resources: items(role('dev'), role('ops'), role('dev', 'x')), upsert: true }, 'admin'),
    (e: unknown) =>
      isMwiError(e, 'BAD_CONFIG') && e.message === 'document 3: role "dev" is also document 1: give each resource once',
  );
  assert.deepEqual(await keys(t), []);
});

it('apply: a refused token named by its secret is named by its id, never the secret', async () => {
  const t = await testContext();
  const secret = 'a-secret-that-is-long-enough';
  const tok = { kind: 'token', metadata: { name: secret }, spec: { join_method: 'token', bot_name: 'b', x: 1 } };
  const bad = { ...tok, spec: { ...tok.spec, join_method: 'token', roles: 'Bot' } };
  await assert.rejects(t.admin.apply({ resources: items(role('dev'), bad), upsert: false }, 'admin'), (e: unknown) => {
    assert.ok(isMwiError(e, 'BAD_CONFIG'));
    assert.ok(
      e.message.startsWith(`document 2 (token "${tokenId(secret, 'token', t.ctx.cas.challengeMac)}"): `),
      e.message,
    );
    assert.doesNotMatch(e.message, new RegExp(secret));
    return true;
  });
});

it('apply: a misspelled kind never names the document by its name (a token secret would be echoed)', async () => {
  const t = await testContext();
  const secret = 'SUPERSECRETVALUE123456';
  for (const kind of ['Token', 'tokens', 'provision_token', undefined]) {
    const doc = { kind, metadata: { name: secret }, spec: { join_method: 'token', bot_name: 'b' } };
    for (const resources of [items(doc), items(role('dev'), doc)]) {
      await assert.rejects(t.admin.apply({ resources, upsert: false }, 'admin'), (e: unknown) => {
        assert.ok(isMwiError(e, 'BAD_CONFIG'), String(e));
        assert.match(e.message, /kind: unknown or missing resource kind/);
        assert.doesNotMatch(e.message, new RegExp(secret));
        if (resources.length === 2) assert.match(e.message, /^document 2\b/);
        return true;
      });
    }
  }
  // known kinds are still named
  await assert.rejects(
    t.admin.apply({ resources: items(role('dev'), { ...role('ops'), spec: { x: 1 } }), upsert: false }, 'admin'),
    (e: unknown) => isMwiError(e, 'BAD_CONFIG') && e.message.startsWith('document 2 (role "ops"): '),
  );
});

it('apply: a write racing the request makes the transaction fail; the plan is made again on what is stored', async () => {
  const t = await testContext();
  await t.admin.create(role('dev', 'old'), false, 'admin');
  const backend = t.ctx.backend;
  const transact = backend.transact.bind(backend);
  let raced = 0;
  backend.transact = async (ops) => {
    // another administrator creates "ops" and changes "dev" between the plan and its transaction
    if (raced++ === 0) {
      await backend.put('/roles/ops', JSON.stringify({ ...role('ops', 'theirs'), version: 'v7' }));
      await backend.put('/roles/dev', JSON.stringify({ ...role('dev', 'theirs'), version: 'v7' }));
    }
    return transact(ops);
  };
  // without --force, the second plan finds "ops" and refuses; "dev" keeps the other writer's version
  await assert.rejects(t.admin.apply({ resources: items(role('ops', 'mine')), upsert: false }, 'admin'), (e: unknown) =>
    isMwiError(e, 'ALREADY_EXISTS'),
  );
  raced = 0;
  // with --force, the second plan replaces what the other writer wrote
  const out = await t.admin.apply(
    { resources: items(role('dev', 'mine'), role('ops', 'mine')), upsert: true },
    'admin',
  );
  assert.deepEqual(
    out.items.map((i) => i.updated),
    [true, true],
  );
  const dev = await t.admin.get('role', 'dev');
  assert.deepEqual(dev.kind === 'role' && dev.spec.allow.logins, ['mine']);
  assert.equal(raced, 2, 'one failed transaction, one that committed');
});

it('create with an expected revision: written only while the stored revision is that one (tctl edit)', async () => {
  const t = await testContext();
  await t.admin.create(role('dev', 'a'), false, 'admin');
  const rev = String((await t.ctx.backend.get('/roles/dev'))!.revision);
  await t.admin.create(role('dev', 'b'), true, 'admin', rev);
  await assert.rejects(
    t.admin.create(role('dev', 'c'), true, 'admin', rev),
    (e: unknown) => isMwiError(e, 'COMPARE_FAILED') && /role "dev" was changed by someone else/.test(e.message),
  );
  const dev = await t.admin.get('role', 'dev');
  assert.deepEqual(dev.kind === 'role' && dev.spec.allow.logins, ['b']);
  await t.admin.remove('role', 'dev', 'admin');
  await assert.rejects(
    t.admin.create(role('dev', 'd'), true, 'admin', rev),
    (e: unknown) => isMwiError(e, 'COMPARE_FAILED') && /was removed by someone else/.test(e.message),
  );
  assert.equal(await t.ctx.backend.get('/roles/dev'), undefined, 'an edit does not bring a removed resource back');
});

it('getJson: the resource as get sends it, its storage revision in the revision header', async () => {
  const t = await testContext();
  await t.admin.create(role('dev'), false, 'admin');
  const raw = await t.admin.getJson('role', 'dev');
  assert.deepEqual(JSON.parse(raw.text), await t.admin.get('role', 'dev'));
  assert.equal(raw.headers['x-mwi-revision'], String((await t.ctx.backend.get('/roles/dev'))!.revision));
});

it('a token-method secret of the id form (h-<16 hex>) is refused where it is made; a name of that form is an id', async () => {
  const t = await testContext();
  await t.admin.create(role('dev'), false, 'admin');
  await t.admin.create(bot('b', ['dev']), false, 'admin');
  const idForm = 'h-0123456789abcdef';
  await assert.rejects(
    t.admin.addToken({ bot_name: 'b', name: idForm }, 'admin'),
    (e: unknown) =>
      isMwiError(e, 'BAD_REQUEST') && e.field === 'name' && /may not have the form h-<16 hex>/.test(e.message),
  );
  // an uppercase form is no id: a secret like any other
  assert.equal(
    (await t.admin.addToken({ bot_name: 'b', name: 'h-0123456789ABCDEF' }, 'admin')).id,
    tokenId('h-0123456789ABCDEF', 'token', t.ctx.cas.challengeMac),
  );
  const tok = (name: string, extra: object = {}) => ({
    kind: 'token',
    metadata: { name, ...extra },
    spec: { join_method: 'token', bot_name: 'b' },
  });
  await assert.rejects(
    t.admin.apply({ resources: items(tok(idForm)), upsert: true }, 'admin'),
    (e: unknown) => isMwiError(e, 'BAD_CONFIG') && /not found: .*A join secret of that form is refused/.test(e.message),
  );
  // the id of a stored token: re-applied, it replaces that token and keeps its secret
  const made = await t.admin.addToken({ bot_name: 'b', name: 'a-secret-that-is-long-enough' }, 'admin');
  const hash = JSON.parse((await t.ctx.backend.get(`/tokens/${made.id}`))!.value).secret_hash;
  const out = await t.admin.apply({ resources: items(tok(made.id, { labels: { env: 'ci' } })), upsert: true }, 'admin');
  assert.deepEqual(out.items[0], { kind: 'token', name: made.id, updated: true });
  const stored = JSON.parse((await t.ctx.backend.get(`/tokens/${made.id}`))!.value);
  assert.equal(stored.secret_hash, hash);
  assert.deepEqual(stored.metadata.labels, { env: 'ci' });
});
