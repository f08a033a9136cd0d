import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import pgDriver from 'pg';
import { DbAuditLog } from '../../src/auth/audit-db.js';
import { loadAuthorities } from '../../src/auth/authorities.js';
import { isMwiError } from '../../src/errors.js';
import type { WatchEvent } from '../../src/storage/backend.js';
import { PG_PURGE_BATCH, PostgresBackend } from '../../src/storage/postgres.js';
import { LOCK_CLASS, LOCKS, MIGRATIONS } from '../../src/storage/postgres-schema.js';
import { openBackend } from '../../src/storage/open.js';
import { backendConformance } from '../helpers/backend-conformance.js';
import { fakeClock } from '../helpers/clock.js';
import { startPostgres } from '../helpers/postgres.js';
import { waitFor } from '../helpers/procs.js';

// one PostgreSQL server for this file, a database per test
const server = startPostgres();
after(async () => (await server).stop());

backendConformance('postgres', async (clock) => PostgresBackend.open(await (await server).createDatabase(), clock.now));

it('postgres: openBackend opens postgres:// and postgresql:// URLs', async () => {
  const url = await (await server).createDatabase();
  for (const spec of [url, url.replace('postgres://', 'postgresql://')]) {
    const b = await openBackend(spec, '/nonexistent');
    assert.ok(b instanceof PostgresBackend);
    await b.put('/a', '1');
    await b.close();
  }
});

it('postgres: an unreachable server is a STORAGE error naming it, without the password', async () => {
  const started = Date.now();
  await assert.rejects(openBackend('postgres://mwi:hunter2@127.0.0.1:1/mwi?sslmode=disable', '/x'), (e) => {
    assert.ok(isMwiError(e, 'STORAGE'), String(e));
    assert.match(e.message, /PostgreSQL at postgres:\/\/mwi@127\.0\.0\.1:1\/mwi: connection refused/);
    assert.ok(!e.message.includes('hunter2'));
    return true;
  });
  assert.ok(Date.now() - started < 5000);
});

const events = (log: string[]) => (e: WatchEvent) =>
  log.push(e.type === 'put' ? `put ${e.item.key}=${e.item.value}` : `delete ${e.key}`);

it("postgres: replicas on one database see each other's changes within 1 s, their own once", async () => {
  const url = await (await server).createDatabase();
  const a = await PostgresBackend.open(url);
  const b = await PostgresBackend.open(url);
  try {
    const seen: string[] = [];
    const stop = a.watch('/locks/', events(seen));
    await b.put('/locks/x', '1');
    await a.put('/locks/mine', '2');
    await b.delete('/locks/x');
    await b.put('/other', '3');
    await waitFor('the delete made through b', () => seen.includes('delete /locks/x'), 1000, 10);
    // the propagation delay: a write through b until a's watcher has it
    const delays: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      await b.put(`/locks/d${i}`, 'x');
      await waitFor('the change', () => seen.includes(`put /locks/d${i}=x`), 1000, 2);
      delays.push(performance.now() - t0);
    }
    stop();
    delays.sort((p, q) => p - q);
    console.log(
      `postgres change feed: propagation delay median ${delays[5]!.toFixed(0)} ms, max ${delays[9]!.toFixed(0)} ms`,
    );
    assert.ok(delays[9]! < 1000);
    assert.equal(seen.filter((e) => e === 'put /locks/mine=2').length, 1, 'own writes are not delivered twice');
    assert.equal(
      seen.filter((e) => e.startsWith('put /locks/x')).length,
      0,
      'a row deleted before the poll is not resurrected',
    );
    assert.ok(!seen.some((e) => e.includes('/other')));
  } finally {
    await a.close();
    await b.close();
  }
});

it('postgres: replicas opening a new database at once migrate it once; a newer schema is refused', async () => {
  const pg = await server;
  const url = await pg.createDatabase();
  const all = await Promise.all(Array.from({ length: 6 }, () => PostgresBackend.open(url)));
  await Promise.all(all.map((b) => b.close()));
  const db = new URL(url).pathname.slice(1);
  const versions = await pg.sql('SELECT version FROM mwi_schema_version ORDER BY version', db);
  assert.deepEqual(
    versions.rows.map((r) => r.version),
    MIGRATIONS.map((_, i) => i + 1),
  );
  await pg.sql(`INSERT INTO mwi_schema_version VALUES (${MIGRATIONS.length + 1}, now())`, db);
  await assert.rejects(PostgresBackend.open(url), (e) => {
    assert.ok(isMwiError(e, 'STORAGE'));
    assert.match(e.message, /schema version \d+ is newer than this mwi/);
    return true;
  });
});

it('postgres: of concurrent conditional writes through two replicas, exactly one wins', async () => {
  const url = await (await server).createDatabase();
  const a = await PostgresBackend.open(url);
  const b = await PostgresBackend.open(url);
  try {
    const t = await a.create('/t', 'token');
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        (i % 2 ? a : b).transact([
          { op: 'delete', key: '/t', revision: t.revision },
          { op: 'create', key: `/i/${i}`, value: 'x' },
        ]),
      ),
    );
    assert.equal(results.filter(Boolean).length, 1);
    assert.equal((await b.range('/i/')).length, 1);
    const c = await a.create('/c', '0');
    const swaps = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).compareAndSwap('/c', c.revision, String(i))),
    );
    assert.equal(swaps.filter((r) => r.status === 'fulfilled').length, 1);
    const creates = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).create('/once', String(i))),
    );
    assert.equal(creates.filter((r) => r.status === 'fulfilled').length, 1);
  } finally {
    await a.close();
    await b.close();
  }
});

it('postgres: one replica purges at a time, in batches, and stops when its signal fires', async () => {
  const pg = await server;
  const url = await pg.createDatabase();
  const clock = fakeClock();
  const a = await PostgresBackend.open(url, clock.now);
  try {
    await Promise.all(Array.from({ length: 3000 }, (_, i) => a.put(`/x/${i}`, 'x', { expires: clock.now() + 1000 })));
    clock.advance(1001);
    // another replica holds the purge lock: this one leaves the work to it
    const holder = new pgDriver.Client({ connectionString: url });
    await holder.connect();
    await holder.query('SELECT pg_advisory_lock($1, $2)', [LOCK_CLASS, LOCKS.purge]);
    assert.equal(await a.purgeExpired(), 0);
    await holder.end();
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 0);
    const first = await a.purgeExpired(stop.signal);
    assert.ok(first < 3000 && first % PG_PURGE_BATCH === 0, `removed ${first}: not whole batches, or did not stop`);
    assert.equal(first + (await a.purgeExpired()), 3000);
  } finally {
    await a.close();
  }
});

it('postgres: a replica that missed changes the log no longer holds reads the watched prefixes again', async () => {
  const pg = await server;
  const url = await pg.createDatabase();
  const a = await PostgresBackend.open(url);
  const b = await PostgresBackend.open(url);
  try {
    const seen: string[] = [];
    a.watch('/locks/', events(seen));
    await b.put('/locks/x', '1');
    await waitFor('the put', () => seen.includes('put /locks/x=1'), 1000, 10);
    // behind a's back: x removed, y added, and the log purged past what a read (as if a had been
    // cut off for longer than the log keeps changes)
    await pg.sql(
      `BEGIN;
       DELETE FROM mwi_kv WHERE key = '/locks/x';
       UPDATE mwi_counters SET value = value + 1 WHERE name = 'revision';
       INSERT INTO mwi_kv SELECT '/locks/y', '2', value, NULL FROM mwi_counters WHERE name = 'revision';
       UPDATE mwi_counters SET value = (SELECT value FROM mwi_counters WHERE name = 'revision') WHERE name = 'pruned';
       DELETE FROM mwi_changes;
       COMMIT;`,
      new URL(url).pathname.slice(1),
    );
    await waitFor('the resync', () => seen.includes('delete /locks/x') && seen.includes('put /locks/y=2'), 2000, 10);
  } finally {
    await a.close();
    await b.close();
  }
});

it('postgres: while the server is down requests fail fast with a clear error; it recovers without a restart', async () => {
  const pg = await server;
  const a = await PostgresBackend.open(await pg.createDatabase());
  try {
    await a.put('/before', '1');
    await pg.halt();
    for (const op of [() => a.get('/before'), () => a.put('/during', '2'), () => a.range('/')]) {
      const t0 = Date.now();
      await assert.rejects(op(), (e) => {
        assert.ok(isMwiError(e, 'STORAGE'), String(e));
        // what reaches API clients says what failed; which database, and why, is for the log
        assert.equal(e.message, 'storage unavailable (the database is unreachable)');
        assert.match(e.detail!, /^PostgreSQL at postgres:\/\/postgres@127\.0\.0\.1:\d+\/\w+: /);
        return true;
      });
      assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
    }
    await pg.resume();
    await a.put('/after', '3');
    assert.equal((await a.get('/before'))?.value, '1');
    assert.equal((await a.get('/after'))?.value, '3');
    assert.equal(await a.get('/during'), undefined);
  } finally {
    await a.close();
  }
});

it('postgres: replicas starting at once create the CAs once and all load the same ones', async () => {
  const url = await (await server).createDatabase();
  const replicas = await Promise.all(Array.from({ length: 4 }, () => PostgresBackend.open(url)));
  try {
    const cas = await Promise.all(replicas.map((b) => loadAuthorities(b, 'race.example.com')));
    assert.equal(new Set(cas.map((c) => c.caPin)).size, 1);
    assert.equal(new Set(cas.map((c) => c.sshUser.publicLine)).size, 1);
    assert.equal(new Set(cas.map((c) => c.challengeMac.toString('hex'))).size, 1);
    assert.equal(new Set(cas.map((c) => c.dbClient.certPem)).size, 1);
    assert.equal(new Set(cas.map((c) => c.db.certPem)).size, 1);
    // tls-user, tls-host, ssh-user, ssh-host, db-client, db and the bound-keypair state key
    assert.equal((await replicas[0]!.range('/cas/')).length, 7);
  } finally {
    await Promise.all(replicas.map((b) => b.close()));
  }
});

it('postgres audit log: every replica reads every event; retention by one replica; held while the database is down', async () => {
  const pg = await server;
  const url = await pg.createDatabase();
  const clock = fakeClock();
  const [a, b] = await Promise.all([PostgresBackend.open(url), PostgresBackend.open(url)]);
  const logA = new DbAuditLog(a, { refusals: false, now: clock.now, retentionMs: 3600_000 });
  const logB = new DbAuditLog(b, { refusals: false, now: clock.now, retentionMs: 3600_000 });
  const refusalsB = new DbAuditLog(b, { refusals: true, now: clock.now });
  try {
    logA.emit({ event: 'bot.join', success: true, bot_name: 'x' });
    clock.advance(10);
    logB.emit({ event: 'bot.renew', success: true, bot_name: 'x' });
    refusalsB.emit({ event: 'bot.join', success: false, reason: 'token not found' });
    clock.advance(10);
    logB.emit({ event: 'bot.renew', success: false, bot_name: 'x', reason: 'locked' });
    await new Promise((r) => setTimeout(r, 50));
    const recent = await logA.recent(10);
    assert.deepEqual(
      recent.map((e) => `${e.event} ${e.success}`),
      ['bot.renew false', 'bot.renew true', 'bot.join true'],
    );
    assert.ok(recent.every((e) => typeof e.uid === 'string' && typeof e.time === 'string' && e.pid === process.pid));
    assert.deepEqual(
      (await logB.recent(10, 'bot.join')).map((e) => e.bot_name),
      ['x'],
    );
    assert.equal((await logB.recent(10, { failures: true })).length, 1);
    assert.equal((await logA.recent(10, { uid: recent[1]!.uid! }))[0]?.event, 'bot.renew');
    assert.deepEqual(await logA.recent(10, { uid: 'not-a-uuid' }), []);
    assert.equal((await refusalsB.recent(10)).length, 1, 'refusals are kept apart');
    // two hours on: one replica purges (the other finds the lock taken or nothing left)
    clock.advance(2 * 3600_000);
    logA.emit({ event: 'auth.start', success: true });
    await new Promise((r) => setTimeout(r, 50));
    const removed = await Promise.all([logA.purge(), logB.purge()]);
    assert.equal(removed[0] + removed[1], 4);
    assert.deepEqual(
      (await logB.recent(10)).map((e) => e.event),
      ['auth.start'],
    );
    // while the database is down, events wait in memory and are written when it is back
    await pg.halt();
    logA.emit({ event: 'lock.created', success: true });
    await new Promise((r) => setTimeout(r, 100));
    await pg.resume();
    await waitFor(
      'the held event',
      async () => (await logB.recent(10, 'lock.created').catch(() => [])).length === 1,
      5000,
    );
  } finally {
    await Promise.all([logA.close(), logB.close(), refusalsB.close()]);
    await Promise.all([a.close(), b.close()]);
  }
});

it('postgres: a connection the server ends while it is in use between two queries does not end the process', async () => {
  const pg = await server;
  const b = await PostgresBackend.open(await pg.createDatabase());
  try {
    // as a write batch holds its connection between its two round trips
    const client = await b.pool.connect();
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    await pg.sql(`SELECT pg_terminate_backend(${rows[0]!.pid})`);
    await new Promise((r) => setTimeout(r, 200));
    await assert.rejects(client.query('SELECT 1'));
    client.release(true);
    await b.put('/after', '1');
  } finally {
    await b.close();
  }
});
