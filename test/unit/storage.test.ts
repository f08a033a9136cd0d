import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { isMwiError } from '../../src/errors.js';
import { MemoryBackend } from '../../src/storage/memory.js';
import { openBackend } from '../../src/storage/open.js';
import { PURGE_BATCH, SqliteBackend } from '../../src/storage/sqlite.js';
import { backendConformance } from '../helpers/backend-conformance.js';
import { fakeClock } from '../helpers/clock.js';

const dir = mkdtempSync(join(tmpdir(), 'mwi-storage-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

backendConformance('memory', async (clock) => new MemoryBackend(clock.now));
backendConformance('sqlite', async (clock) => new SqliteBackend(join(dir, `t${n++}.db`), clock.now));

it('sqlite: a watcher sees changes made by another process on the same file, once', async () => {
  const file = join(dir, 'shared.db');
  const a = new SqliteBackend(file);
  const b = new SqliteBackend(file);
  const events: string[] = [];
  const stop = a.watch('/locks/', (e) =>
    events.push(e.type === 'put' ? `put ${e.item.key}=${e.item.value}` : `delete ${e.key}`),
  );
  await b.put('/locks/x', '1');
  await a.put('/locks/mine', '2');
  await b.delete('/locks/x');
  await b.put('/other', '3');
  await new Promise((r) => setTimeout(r, 350));
  stop();
  assert.ok(events.includes('put /locks/mine=2'));
  assert.ok(events.includes('delete /locks/x'));
  assert.equal(events.filter((e) => e === 'put /locks/mine=2').length, 1, 'own writes are not delivered twice');
  assert.equal(
    events.filter((e) => e.startsWith('put /locks/x')).length,
    0,
    'a row deleted before the poll is not resurrected',
  );
  await a.close();
  await b.close();
});

it('sqlite: a storage error in a group commit rolls the whole batch back and fails every write in it', async () => {
  const b = new SqliteBackend(join(dir, 'batch-error.db'));
  // a NULL value breaks the table's NOT NULL constraint: a real SQLite error mid-batch
  const results = await Promise.allSettled([
    b.put('/a', '1'),
    b.put('/bad', null as unknown as string),
    b.create('/c', '3'),
  ]);
  assert.deepEqual(
    results.map((r) => r.status),
    ['rejected', 'rejected', 'rejected'],
  );
  for (const r of results) assert.equal(r.status === 'rejected' && (r.reason as { code?: string }).code, 'STORAGE');
  assert.equal(await b.get('/a'), undefined, 'nothing of the batch was committed');
  assert.equal(await b.get('/c'), undefined);
  // the next batch works, and its revisions follow on
  const ok = await b.put('/a', '1');
  assert.ok(ok.revision > 0);
  await b.close();
});

it('sqlite: writes accepted before close are committed', async () => {
  const file = join(dir, 'close.db');
  const b = new SqliteBackend(file);
  const pending = b.put('/kept', 'yes');
  await b.close();
  await pending;
  const again = new SqliteBackend(file);
  assert.equal((await again.get('/kept'))?.value, 'yes');
  await again.close();
});

it('sqlite: WAL checkpoints run on a worker thread, not in commits on the event loop', async () => {
  const file = join(dir, 'checkpoint.db');
  const b = new SqliteBackend(file);
  assert.equal(
    (b as unknown as { db: { pragma: (s: string, o: object) => unknown } }).db.pragma('wal_autocheckpoint', {
      simple: true,
    }),
    0,
    'commits never checkpoint',
  );
  const before = statSync(file).size;
  const value = 'x'.repeat(4000);
  for (let i = 0; i < 50; i++) await Promise.all(Array.from({ length: 10 }, (_, j) => b.put(`/k/${i}/${j}`, value)));
  // the pages reach the main file only through a checkpoint; the worker runs one every 250 ms
  const deadline = Date.now() + 5000;
  while (statSync(file).size < before + 1_000_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(statSync(file).size >= before + 1_000_000, `main file ${statSync(file).size} bytes: no checkpoint ran`);
  // if the worker dies, commits checkpoint again (SQLite's default), so the WAL cannot grow forever
  const inner = b as unknown as {
    checkpointer: { terminate: () => Promise<number> };
    db: { pragma: (s: string, o: object) => unknown };
  };
  await inner.checkpointer.terminate();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(inner.db.pragma('wal_autocheckpoint', { simple: true }), 1000);
  await b.close();
});

it('openBackend: SQLite under the data dir by default, sqlite:// paths, memory://; else BAD_CONFIG', async () => {
  const dataDir = join(dir, 'open');
  mkdirSync(dataDir);
  const dflt = await openBackend(undefined, dataDir);
  assert.ok(dflt instanceof SqliteBackend && existsSync(join(dataDir, 'mwi.db')));
  await dflt.close();
  const named = await openBackend(`sqlite://${join(dir, 'named.db')}`, dataDir);
  assert.ok(named instanceof SqliteBackend && existsSync(join(dir, 'named.db')));
  await named.close();
  assert.ok((await openBackend('memory://', dataDir)) instanceof MemoryBackend);
  await assert.rejects(openBackend('mysql://mwi:hunter2@db/mwi', dataDir), (e) => {
    assert.ok(isMwiError(e, 'BAD_CONFIG') && e.field === 'storage');
    assert.ok(!e.message.includes('hunter2'), `the password is in the error: ${e.message}`);
    return true;
  });
});

it('sqlite: a purge whose signal fires mid-way stops after the batch in progress', async () => {
  const clock = fakeClock();
  const b = new SqliteBackend(join(dir, 'purge-abort.db'), clock.now);
  try {
    await Promise.all(Array.from({ length: 5000 }, (_, i) => b.put(`/x/${i}`, 'x', { expires: clock.now() + 1000 })));
    clock.advance(1001);
    // the batches yield to the event loop between them: a timer gets to run after the first few
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 0);
    const first = await b.purgeExpired(stop.signal);
    assert.ok(first < 5000 && first % PURGE_BATCH === 0, `removed ${first}: not whole batches, or did not stop`);
    assert.equal(first + (await b.purgeExpired()), 5000);
  } finally {
    await b.close();
  }
});
