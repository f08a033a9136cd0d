import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isMwiError } from '../../src/errors.js';
import type { Backend, WatchEvent } from '../../src/storage/backend.js';
import { fakeClock, type FakeClock } from './clock.js';

/**
 * The one conformance suite every storage backend must pass. `open` returns a fresh, empty
 * backend driven by the given clock.
 */
export function backendConformance(name: string, open: (clock: FakeClock) => Promise<Backend>): void {
  describe(`storage conformance: ${name}`, () => {
    const withBackend = (fn: (b: Backend, clock: FakeClock) => Promise<void>) => async () => {
      const clock = fakeClock();
      const b = await open(clock);
      try {
        await fn(b, clock);
      } finally {
        await b.close();
      }
    };

    it(
      'puts and gets with increasing revisions',
      withBackend(async (b) => {
        assert.equal(await b.get('/a'), undefined);
        const one = await b.put('/a', '1');
        const two = await b.put('/a', '2');
        assert.ok(two.revision > one.revision);
        assert.deepEqual(await b.get('/a'), { key: '/a', value: '2', revision: two.revision, expires: undefined });
      }),
    );

    it(
      'create fails when the key exists',
      withBackend(async (b) => {
        await b.create('/a', '1');
        await assert.rejects(b.create('/a', '2'), (e) => isMwiError(e, 'ALREADY_EXISTS'));
        assert.equal((await b.get('/a'))?.value, '1');
      }),
    );

    it(
      'compareAndSwap writes only on the expected revision',
      withBackend(async (b) => {
        const item = await b.create('/a', '1');
        const next = await b.compareAndSwap('/a', item.revision, '2');
        await assert.rejects(b.compareAndSwap('/a', item.revision, '3'), (e) => isMwiError(e, 'COMPARE_FAILED'));
        await assert.rejects(b.compareAndSwap('/missing', 1, 'x'), (e) => isMwiError(e, 'COMPARE_FAILED'));
        assert.equal((await b.get('/a'))?.value, '2');
        assert.equal((await b.get('/a'))?.revision, next.revision);
      }),
    );

    it(
      'exactly one of many concurrent compareAndSwaps wins',
      withBackend(async (b) => {
        const item = await b.create('/counter', '0');
        const results = await Promise.allSettled(
          Array.from({ length: 20 }, (_, i) => b.compareAndSwap('/counter', item.revision, String(i + 1))),
        );
        assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      }),
    );

    it(
      'conditional delete: exactly one of many concurrent deletes wins',
      withBackend(async (b) => {
        const item = await b.create('/token', 'x');
        const results = await Promise.all(Array.from({ length: 20 }, () => b.delete('/token', item.revision)));
        assert.equal(results.filter(Boolean).length, 1);
        assert.equal(await b.get('/token'), undefined);
        assert.equal(await b.delete('/token'), false);
      }),
    );

    it(
      'delete with a stale revision keeps the item',
      withBackend(async (b) => {
        const first = await b.put('/a', '1');
        await b.put('/a', '2');
        assert.equal(await b.delete('/a', first.revision), false);
        assert.equal((await b.get('/a'))?.value, '2');
      }),
    );

    it(
      'range returns keys under a prefix in order, with paging',
      withBackend(async (b) => {
        for (const k of ['/b/2', '/b/1', '/b/3', '/bb/1', '/a/1']) await b.put(k, k);
        assert.deepEqual(
          (await b.range('/b/')).map((i) => i.key),
          ['/b/1', '/b/2', '/b/3'],
        );
        assert.deepEqual(
          (await b.range('/b/', { limit: 2 })).map((i) => i.key),
          ['/b/1', '/b/2'],
        );
        assert.deepEqual(
          (await b.range('/b/', { startAfter: '/b/2' })).map((i) => i.key),
          ['/b/3'],
        );
        assert.deepEqual(await b.range('/none/'), []);
      }),
    );

    it(
      'expired items are absent and can be created again',
      withBackend(async (b, clock) => {
        await b.put('/e', 'x', { expires: clock.now() + 1000 });
        assert.equal((await b.get('/e'))?.value, 'x');
        assert.equal((await b.get('/e'))?.expires, clock.now() + 1000);
        clock.advance(1001);
        assert.equal(await b.get('/e'), undefined);
        assert.deepEqual(await b.range('/'), []);
        await b.create('/e', 'y');
        assert.equal((await b.get('/e'))?.value, 'y');
      }),
    );

    it(
      'purgeExpired removes expired items only, however many',
      withBackend(async (b, clock) => {
        assert.ok(typeof b.purgeExpired === 'function', 'every backend reclaims expired items');
        await Promise.all(
          Array.from({ length: 1234 }, (_, i) => b.put(`/x/${i}`, 'x', { expires: clock.now() + 1000 })),
        );
        await b.put('/live', '1', { expires: clock.now() + 5000 });
        await b.put('/forever', '2');
        clock.advance(1001);
        assert.equal(await b.purgeExpired(), 1234);
        assert.equal(await b.purgeExpired(), 0);
        assert.deepEqual(
          (await b.range('/')).map((i) => i.key),
          ['/forever', '/live'],
        );
        await b.create('/x/1', 'again');
        assert.equal((await b.get('/x/1'))?.value, 'again');
      }),
    );

    it(
      'purgeExpired stops when its signal fires; the next call takes up the rest',
      withBackend(async (b, clock) => {
        await Promise.all(
          Array.from({ length: 1234 }, (_, i) => b.put(`/x/${i}`, 'x', { expires: clock.now() + 1000 })),
        );
        clock.advance(1001);
        assert.equal(await b.purgeExpired(AbortSignal.abort()), 0, 'a signal that already fired removes nothing');
        const stop = new AbortController();
        const first = b.purgeExpired(stop.signal);
        stop.abort();
        const rest = await b.purgeExpired();
        assert.equal((await first) + rest, 1234, 'each item removed once, by one call or the other');
        assert.equal(await b.purgeExpired(), 0);
      }),
    );

    it(
      'watch reports puts and deletes under its prefix only',
      withBackend(async (b) => {
        const events: WatchEvent[] = [];
        const stop = b.watch('/locks/', (e) => events.push(e));
        await b.put('/locks/a', '1');
        await b.put('/other', '1');
        await b.delete('/locks/a');
        await new Promise((r) => setTimeout(r, 50));
        stop();
        await b.put('/locks/b', '1');
        await new Promise((r) => setTimeout(r, 50));
        assert.deepEqual(
          events.map((e) => (e.type === 'put' ? `put ${e.item.key}` : `delete ${e.key}`)),
          ['put /locks/a', 'delete /locks/a'],
        );
      }),
    );

    it(
      'transact applies all ops or none',
      withBackend(async (b) => {
        const t = await b.create('/t', 'token');
        await b.create('/exists', 'e');
        assert.equal(
          await b.transact([
            { op: 'delete', key: '/t', revision: t.revision },
            { op: 'create', key: '/i/1', value: 'x' },
            { op: 'create', key: '/exists', value: 'dup' },
          ]),
          false,
        );
        assert.equal((await b.get('/t'))?.value, 'token', 'a failed transact changed nothing');
        assert.equal(await b.get('/i/1'), undefined);
        const other = await b.create('/o', '1');
        assert.equal(
          await b.transact([
            { op: 'delete', key: '/t', revision: t.revision },
            { op: 'create', key: '/i/1', value: 'x' },
            { op: 'compareAndSwap', key: '/o', revision: other.revision, value: '2' },
          ]),
          true,
        );
        assert.equal(await b.get('/t'), undefined);
        assert.equal((await b.get('/i/1'))?.value, 'x');
        assert.equal((await b.get('/o'))?.value, '2');
      }),
    );

    it(
      'of many concurrent transacts consuming one item, exactly one commits',
      withBackend(async (b) => {
        const t = await b.create('/t', 'token');
        const results = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            b.transact([
              { op: 'delete', key: '/t', revision: t.revision },
              { op: 'create', key: `/i/${i}`, value: 'x' },
            ]),
          ),
        );
        assert.equal(results.filter(Boolean).length, 1);
        assert.equal((await b.range('/i/')).length, 1);
      }),
    );

    it(
      'writes issued together settle one by one: a refused one does not undo the others',
      withBackend(async (b) => {
        await b.create('/taken', 'x');
        const seen: WatchEvent[] = [];
        const stop = b.watch('/', (e) => seen.push(e));
        const [a, dup, c] = await Promise.allSettled([b.create('/a', '1'), b.create('/taken', 'y'), b.put('/c', '3')]);
        stop();
        assert.equal(a.status, 'fulfilled');
        assert.ok(dup.status === 'rejected' && isMwiError(dup.reason, 'ALREADY_EXISTS'));
        assert.equal(c.status, 'fulfilled');
        assert.ok(
          a.status === 'fulfilled' && c.status === 'fulfilled' && c.value.revision > a.value.revision,
          'revisions follow the order writes were issued',
        );
        assert.equal((await b.get('/taken'))?.value, 'x');
        assert.deepEqual(
          seen.map((e) => (e.type === 'put' ? e.item.key : e.key)),
          ['/a', '/c'],
        );
      }),
    );

    it(
      'stores arbitrary unicode JSON text intact',
      withBackend(async (b) => {
        const value = JSON.stringify({ s: 'ünï\u{1F600}\n"q"' });
        await b.put('/u', value);
        assert.equal((await b.get('/u'))?.value, value);
      }),
    );
  });
}
