import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { SqliteBackend, WAL_MAX_BYTES } from '../../src/storage/sqlite.js';

const dir = mkdtempSync(join(tmpdir(), 'mwi-f06-wal-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const walSize = (db: string) => {
  try {
    return statSync(`${db}-wal`).size;
  } catch {
    return 0;
  }
};

it('finding 6: sustained writes with concurrent readers keep the SQLite WAL under its size threshold', async () => {
  const file = join(dir, 'flood.db');
  const b = new SqliteBackend(file);
  await b.put('/k/0', 'seed');
  // two readers on their own connections, like two more Auth Service workers serving reads
  const readers = [0, 1].map(
    () => new Worker(new URL('../helpers/wal-reader-worker.js', import.meta.url), { workerData: { path: file } }),
  );
  await new Promise((r) => setTimeout(r, 200));
  let maxWal = 0;
  const sampler = setInterval(() => (maxWal = Math.max(maxWal, walSize(file))), 20);
  // what a flood of challenge writes does: group commits of new rows, back to back, until three
  // thresholds' worth of values went in (a few seconds; the WAL holds several times as much)
  const value = 'x'.repeat(2000);
  const end = Date.now() + 30_000;
  let n = 0;
  while (n * value.length < 3 * WAL_MAX_BYTES && Date.now() < end) {
    await Promise.all(Array.from({ length: 64 }, () => b.put(`/k/${n++}`, value, { expires: Date.now() + 60_000 })));
  }
  const written = n * value.length;
  // readers stop; a moment for the checkpointer's next round
  const reads = await Promise.all(
    readers.map(
      (w) =>
        new Promise<number>((r) => {
          w.once('message', r);
          w.postMessage('stop');
        }),
    ),
  );
  await Promise.all(readers.map((w) => w.terminate()));
  await new Promise((r) => setTimeout(r, 600));
  clearInterval(sampler);
  const finalWal = walSize(file);
  await b.close();
  assert.ok(written >= 3 * WAL_MAX_BYTES, `the test wrote only ${written} bytes: not enough to show anything`);
  assert.ok(
    reads.every((r) => r > 0),
    'the readers ran',
  );
  // while it runs, a busy machine may starve the checkpointer thread for a moment: some slack
  assert.ok(
    maxWal <= 4 * WAL_MAX_BYTES,
    `WAL reached ${maxWal} bytes during ${written} bytes of writes (limit ${WAL_MAX_BYTES}; without a TRUNCATE ` +
      `checkpoint it grows with every write)`,
  );
  assert.ok(finalWal <= WAL_MAX_BYTES, `WAL left at ${finalWal} bytes (limit ${WAL_MAX_BYTES})`);
});
