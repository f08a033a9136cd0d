import assert from 'node:assert/strict';
import { it } from 'node:test';
import { addBotRequest, addTokenRequest, ADMIN_ROUTES, createResourceRequest } from '../../src/api/admin.js';
import { signHostRequest, updateBotRequest } from '../../src/api/admin.js';
import { routePath } from '../../src/api/route.js';
import { PATHS } from '../../src/api/wire.js';
import { isMwiError } from '../../src/errors.js';
import { parseWith } from '../../src/util/parse.js';

/** The fields that have a value (a field read as absent may be there as undefined). */
const given = (o: object) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
const parse = <S extends Parameters<typeof parseWith>[0]>(schema: S, input: unknown) =>
  parseWith(schema, input, { code: 'BAD_REQUEST' });

it('admin routes: every one under /v1/admin/, with a reply schema, and no two alike', () => {
  const seen = new Set<string>();
  for (const r of Object.values(ADMIN_ROUTES)) {
    assert.ok(r.path.startsWith(`${PATHS.admin}/`), r.path);
    assert.ok(r.reply, r.path);
    const key = `${r.method} ${r.path.replace(/:\w+/g, ':')}`;
    assert.ok(!seen.has(key), key);
    seen.add(key);
  }
});

it('routePath: each parameter percent-encoded into its segment, query values without a value left out', () => {
  const one = routePath(ADMIN_ROUTES.getResource, { kind: 'bot_instance', name: 'ci/1 2?' });
  assert.equal(one, '/v1/admin/resources/bot_instance/ci%2F1%202%3F');
  const page = routePath(ADMIN_ROUTES.listResources, { kind: 'roles' }, { bot: '', limit: '1', x: undefined });
  assert.equal(page, '/v1/admin/resources/roles?limit=1');
  assert.equal(routePath(ADMIN_ROUTES.status, {}), '/v1/admin/status');
  assert.throws(() => routePath(ADMIN_ROUTES.exportCA, {} as { type: string }), TypeError);
});

it('admin request bodies: a body that is no object reads as one without fields; upsert only when true', () => {
  for (const body of [undefined, null, 'x', 5, [], [1]]) {
    assert.deepEqual(given(parse(createResourceRequest, body)), { upsert: false });
  }
  for (const upsert of ['yes', 1, false, null]) assert.equal(parse(createResourceRequest, { upsert }).upsert, false);
  assert.equal(parse(createResourceRequest, { upsert: true }).upsert, true);
});

it('admin request bodies: an optional field of another JSON type reads as absent (the default applies)', () => {
  const token = { bot_name: 'b', join_method: 5, ttl: 30, name: {}, spec: 'x', other: 1 };
  assert.deepEqual(given(parse(addTokenRequest, token)), { bot_name: 'b' });
  assert.deepEqual(given(parse(addTokenRequest, { bot_name: 'b', spec: [1] })), { bot_name: 'b' });
  const bot = { name: 'b', roles: ['r'], logins: 'x', token_ttl: 5, join_method: null };
  assert.deepEqual(given(parse(addBotRequest, bot)), { name: 'b', roles: ['r'] });
  assert.deepEqual(given(parse(updateBotRequest, { roles: 'r', logins: {} })), {});
  // host names: each read as text; a value that is no list is none (refused by the handler, naming --host)
  assert.deepEqual(parse(signHostRequest, { public_key: 'k', principals: ['h', 5, ''] }).principals, ['h', '5', '']);
  assert.deepEqual(parse(signHostRequest, { public_key: 'k', principals: 'h' }).principals, []);
});

it('admin request bodies: a required field missing or of the wrong type is refused naming it', () => {
  const refused = (schema: Parameters<typeof parse>[0], body: unknown, message: RegExp) =>
    assert.throws(
      () => parse(schema, body),
      (e) => isMwiError(e, 'BAD_REQUEST') && message.test(e.message),
    );
  refused(addBotRequest, {}, /^name: Required$/);
  refused(addBotRequest, { name: 'b', roles: [5] }, /^roles\[0\]: Expected string, received number$/);
  refused(addBotRequest, { name: 'b', roles: ['r'], logins: [5] }, /^logins\[0\]: Expected string/);
  refused(addTokenRequest, null, /^bot_name: Required$/);
  refused(signHostRequest, { principals: ['h'] }, /^public_key: Required$/);
});
