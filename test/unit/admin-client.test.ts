import assert from 'node:assert/strict';
import { it } from 'node:test';
import { AdminClient } from '../../src/api/admin-client.js';
import type { ApiClient, CallOptions } from '../../src/api/client.js';
import { NEXT_PAGE_HEADER } from '../../src/api/wire.js';
import { isMwiError } from '../../src/errors.js';

/** The fake listing's items. */
interface Item {
  n: number;
}

/** A stand-in for the Auth Service's paged listing: 3 pages; the next-page token in a header and in the body. */
function fakeApi(opts: { failPage?: number; header?: boolean } = {}) {
  const data: Item[] = Array.from({ length: 12 }, (_, i) => ({ n: i }));
  const log: string[] = [];
  const api = {
    async call<T>(_m: string, path: string, _b: unknown, o: CallOptions<T> = {}): Promise<T> {
      const q = new URL(path, 'https://x').searchParams;
      const start = Number(q.get('start_after') ?? '-1') + 1;
      const page = start / 5;
      log.push(`request ${page}`);
      if (page === opts.failPage) throw new Error(`page ${page} failed`);
      const items = data.slice(start, start + 5);
      const next = start + 5 < data.length ? String(start + 4) : undefined;
      // headers first, then (a moment later) the body, as over the network
      o.onHeaders?.(next && opts.header !== false ? { [NEXT_PAGE_HEADER]: encodeURIComponent(next) } : {});
      await new Promise((r) => setTimeout(r, 5));
      log.push(`answer ${page}`);
      return { items, ...(next ? { next } : {}) } as T;
    },
  };
  return { admin: new AdminClient(api as unknown as ApiClient), log, data };
}

it('tctl pages: every item once, in order; page k+1 is asked for before page k has arrived, never further ahead', async () => {
  const { admin, log, data } = fakeApi();
  assert.deepEqual(await admin.listAll('bot_instances'), data);
  assert.deepEqual(log, ['request 0', 'request 1', 'answer 0', 'request 2', 'answer 1', 'answer 2']);
});

it('tctl pages: without the header (an older Auth Service) the body token is used', async () => {
  const { admin, log, data } = fakeApi({ header: false });
  assert.deepEqual(await admin.listAll('bot_instances'), data);
  assert.deepEqual(log, ['request 0', 'answer 0', 'request 1', 'answer 1', 'request 2', 'answer 2']);
});

it('tctl pages: a page that fails fails the listing, after the pages before it', async () => {
  const { admin } = fakeApi({ failPage: 1 });
  const seen: number[] = [];
  await assert.rejects(
    (async () => {
      for await (const items of admin.pages('bot_instances')) seen.push(...items.map((i) => (i as unknown as Item).n));
    })(),
    /page 1 failed/,
  );
  assert.deepEqual(seen, [0, 1, 2, 3, 4]);
});

/** An ApiClient stand-in that records each request and answers with `answer`. */
function recording(answer: unknown) {
  const sent: Array<{ method: string; path: string; body: unknown }> = [];
  const api = {
    async call<T>(method: string, path: string, body: unknown): Promise<T> {
      sent.push({ method, path, body });
      return answer as T;
    },
  };
  return { admin: new AdminClient(api as unknown as ApiClient), sent };
}

it('AdminClient: URLs come from ADMIN_ROUTES, names percent-encoded, empty query values left out', async () => {
  // an answer both a resource and a page (the check lets fields it does not name pass)
  const { admin, sent } = recording({ kind: 'bot_instance', metadata: { name: 'i' }, items: [] });
  await admin.get('bot_instance', 'ci/0000');
  await admin.listPage('bot_instances', { bot: 'ci', limit: 10 });
  await admin.listPage('roles', { bot: '' });
  assert.deepEqual(
    sent.map((s) => `${s.method} ${s.path}`),
    [
      'GET /v1/admin/resources/bot_instance/ci%2F0000',
      'GET /v1/admin/resources/bot_instances?bot=ci&limit=10',
      'GET /v1/admin/resources/roles',
    ],
  );
});

it('AdminClient: an answer is checked against its reply schema and returned as sent', async () => {
  const answer = { server_version: '1', extra: true, ca_pin: 'p', cluster_name: 'c' };
  assert.equal(JSON.stringify(await recording(answer).admin.status()), JSON.stringify(answer));
  await assert.rejects(recording({ cluster_name: 'c', ca_pin: 5 }).admin.status(), (e) => {
    assert.ok(isMwiError(e, 'INTERNAL'));
    assert.match(e.message, /malformed answer to GET \/v1\/admin\/status \(ca_pin: Expected string, received number\)/);
    return true;
  });
  const page = recording({ items: 'x' }).admin.listPage('roles');
  await assert.rejects(page, /malformed answer to GET \/v1\/admin\/resources\/:kind \(items:/);
});

it('AdminClient: bodies as the routes take them', async () => {
  const { admin, sent } = recording({ kind: 'role', name: 'r' });
  await admin.create({ kind: 'role' });
  await admin.create({ kind: 'role' }, true);
  assert.deepEqual(
    sent.map((s) => s.body),
    [
      { resource: { kind: 'role' }, upsert: false },
      { resource: { kind: 'role' }, upsert: true },
    ],
  );
});

it('AdminClient: the create reply carries the notes on what the Auth Service ignored; a malformed one is refused', async () => {
  const notes = ['role "r": spec.allow.kubernetes_labels is not used by mwi (ignored)'];
  assert.deepEqual((await recording({ kind: 'role', name: 'r', notes }).admin.create({ kind: 'role' })).notes, notes);
  await assert.rejects(
    recording({ kind: 'role', name: 'r', notes: 'one' }).admin.create({ kind: 'role' }),
    /malformed answer to POST \/v1\/admin\/resources \(notes:/,
  );
});
