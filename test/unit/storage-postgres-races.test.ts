// Findings of the attacker's review of issue #15 (PostgreSQL HA), each reproduced against a real
// PostgreSQL: a change feed that delivered an older change over a replica's own newer one, a
// revision counter gone back in time, a database whose default isolation is not READ COMMITTED,
// a migration lock held longer than the driver's read timeout, a NUL character in a batch.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, it } from 'node:test';
import pgDriver from 'pg';
import { isMwiError } from '../../src/errors.js';
import type { Backend, WatchEvent } from '../../src/storage/backend.js';
import { PostgresBackend } from '../../src/storage/postgres.js';
import { LOCK_CLASS, LOCKS } from '../../src/storage/postgres-schema.js';
import { SqliteBackend } from '../../src/storage/sqlite.js';
import { startPostgres } from '../helpers/postgres.js';
import { tempDir, waitFor } from '../helpers/procs.js';

const server = startPostgres();
after(async () => (await server).stop());

/** What a cache built from `b.watch(prefix)` holds (as the Auth Service's caches are built). */
function cacheOf(b: Backend, prefix: string): { map: Map<string, string>; stop: () => void } {
  const map = new Map<string, string>();
  const stop = b.watch(prefix, (e: WatchEvent) => {
    if (e.type === 'put') map.set(e.item.key, e.item.value);
    else map.delete(e.key);
  });
  return { map, stop };
}

/** Every key of `prefix` in storage, as `b` reads it now. */
async function stored(b: Backend, prefix: string): Promise<Map<string, string>> {
  return new Map((await b.range(prefix)).map((i) => [i.key, i.value]));
}

async function settle(ms = 600): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

it("postgres: a delete through B, read late, never removes what A wrote after it from A's cache", async () => {
  const url = await (await server).createDatabase();
  const a = await PostgresBackend.open(url);
  const b = await PostgresBackend.open(url);
  const cache = cacheOf(a, '/locks/');
  try {
    // (before: 198 of 200 such locks were in the database and missing from A's cache for good)
    for (let i = 0; i < 200; i++) await b.put(`/locks/l${i}`, 'first');
    await waitFor('the locks in A', () => cache.map.size === 200, 5000, 10);
    await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        await b.delete(`/locks/l${i}`);
        await a.put(`/locks/l${i}`, 'again');
      }),
    );
    await settle();
    assert.deepEqual(cache.map, await stored(a, '/locks/'));
    assert.equal(cache.map.size, 200);
  } finally {
    cache.stop();
    await Promise.all([a.close(), b.close()]);
  }
});

it("postgres: B's older put, read in a snapshot before A's newer one committed, never replaces it in A's cache", async () => {
  const url = await (await server).createDatabase();
  const a = await PostgresBackend.open(url);
  const b = await PostgresBackend.open(url);
  const cache = cacheOf(a, '/roles/');
  try {
    // (before: 32 and 37 of 400 keys stayed at B's older value in A's cache)
    await Promise.all(
      Array.from({ length: 400 }, async (_, i) => {
        await b.put(`/roles/r${i}`, 'b-older');
        await a.put(`/roles/r${i}`, 'a-newer');
      }),
    );
    await settle();
    const want = await stored(a, '/roles/');
    assert.ok([...want.values()].every((v) => v === 'a-newer'));
    assert.deepEqual(cache.map, want);
  } finally {
    cache.stop();
    await Promise.all([a.close(), b.close()]);
  }
});

it('sqlite (--workers): a delete by another process, read late, never removes what this one wrote after it', async () => {
  const tmp = tempDir('sqlite-races');
  const file = join(tmp.path, 'mwi.db');
  const a = new SqliteBackend(file);
  const b = new SqliteBackend(file);
  const cache = cacheOf(a, '/locks/');
  try {
    for (let i = 0; i < 50; i++) {
      await b.put(`/locks/l${i}`, 'first');
      a.pollChanges();
      await b.delete(`/locks/l${i}`);
      // A writes again before its poller has read B's delete
      await a.put(`/locks/l${i}`, 'again');
      a.pollChanges();
    }
    assert.deepEqual(cache.map, await stored(a, '/locks/'));
    assert.equal(cache.map.size, 50);
  } finally {
    cache.stop();
    await a.close();
    await b.close();
    tmp.cleanup();
  }
});

it('postgres: a counter gone back in time (a lossy failover, a restore) makes a replica read everything again', async () => {
  const url = await (await server).createDatabase();
  const a = await PostgresBackend.open(url);
  const w = await PostgresBackend.open(url);
  const cache = cacheOf(a, '/locks/');
  const sql = new pgDriver.Client({ connectionString: url });
  await sql.connect();
  try {
    for (let i = 0; i < 20; i++) await w.put(`/locks/w${i}`, String(i));
    await waitFor('the 20 locks in A', () => cache.map.size === 20, 5000, 10);
    // what a standby promoted without the last 10 commits holds: those rows and revisions gone
    const { rows } = await sql.query<{ value: string }>("SELECT value FROM mwi_counters WHERE name = 'revision'");
    const top = Number(rows[0]!.value);
    await sql.query('DELETE FROM mwi_kv WHERE revision > $1', [top - 10]);
    await sql.query('DELETE FROM mwi_changes WHERE revision > $1', [top - 10]);
    await sql.query("UPDATE mwi_counters SET value = $1 WHERE name = 'revision'", [top - 10]);
    // a replica opened after the failover writes, reusing those revision numbers
    const fresh = await PostgresBackend.open(url);
    try {
      await fresh.put('/locks/freeze', 'after the failover');
      // (before: never in A's cache, however many writes followed)
      await waitFor('the new lock in A', () => cache.map.get('/locks/freeze') === 'after the failover', 3000, 20);
      await settle();
      assert.deepEqual(cache.map, await stored(a, '/locks/'));
    } finally {
      await fresh.close();
    }
  } finally {
    cache.stop();
    await sql.end();
    await Promise.all([a.close(), w.close()]);
  }
});

it('postgres: a database whose default isolation is SERIALIZABLE or REPEATABLE READ: contended writes still succeed', async () => {
  for (const level of ['serializable', 'repeatable read']) {
    const url = await (await server).createDatabase();
    const sql = new pgDriver.Client({ connectionString: url });
    await sql.connect();
    const db = (await sql.query<{ d: string }>('SELECT current_database() AS d')).rows[0]!.d;
    await sql.query(`ALTER DATABASE "${db}" SET default_transaction_isolation = '${level}'`);
    await sql.end();
    const a = await PostgresBackend.open(url);
    const b = await PostgresBackend.open(url);
    try {
      await a.put('/n', '0');
      let won = 0;
      const failures: string[] = [];
      // (before: under serializable, 88 to 100 of 200 failed with SQLSTATE 40001)
      await Promise.all(
        Array.from({ length: 200 }, async (_, i) => {
          const via = i % 2 ? a : b;
          for (;;) {
            const cur = (await via.get('/n'))!;
            try {
              await via.compareAndSwap('/n', cur.revision, String(Number(cur.value) + 1));
              won++;
              return;
            } catch (err) {
              if (isMwiError(err, 'COMPARE_FAILED')) continue;
              failures.push(String(err));
              return;
            }
          }
        }),
      );
      assert.deepEqual(failures, [], level);
      assert.equal(won, 200);
      assert.equal((await a.get('/n'))!.value, '200');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }
});

it("postgres: a replica waits for another's migration lock past the driver's 8 s read timeout", async () => {
  const url = await (await server).createDatabase();
  const holder = new pgDriver.Client({ connectionString: url });
  await holder.connect();
  await holder.query('SELECT pg_advisory_lock($1, $2)', [LOCK_CLASS, LOCKS.migrate]);
  const release = setTimeout(
    () => void holder.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_CLASS, LOCKS.migrate]),
    9500,
  );
  try {
    // (before: refused after 8 s with "Query read timeout")
    const b = await PostgresBackend.open(url);
    await b.put('/a', '1');
    await b.close();
  } finally {
    clearTimeout(release);
    await holder.end();
  }
});

it('postgres: a NUL character fails its own write only, not the others sharing its batch', async () => {
  const url = await (await server).createDatabase();
  const b = await PostgresBackend.open(url);
  try {
    // (before: the two innocent puts failed too, as "write outcome unknown")
    const [one, bad, two, read] = await Promise.allSettled([
      b.put('/x/1', 'a'),
      b.put('/x/nul\u0000', 'b'),
      b.put('/x/2', 'c'),
      b.get('/x/nul\u0000'),
    ]);
    assert.equal(one.status, 'fulfilled');
    assert.equal(two.status, 'fulfilled');
    for (const r of [bad, read]) {
      assert.equal(r.status, 'rejected');
      assert.match(String(r.reason), /NUL character cannot be stored/);
    }
    assert.equal((await b.get('/x/1'))?.value, 'a');
  } finally {
    await b.close();
  }
});
