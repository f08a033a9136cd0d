// Worker thread for f06-wal-bounded.test.ts: another Auth Service process's reads on the same
// SQLite file (its own connection through the real SqliteBackend), in a tight loop until told
// to stop. Overlapping readers are what keeps a PASSIVE checkpoint from ever resetting the WAL.
// (The test runner also loads this file on its own, on the main thread: then it does nothing.)
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { SqliteBackend } from '../../src/storage/sqlite.js';

async function read(path: string): Promise<void> {
  const b = new SqliteBackend(path);
  let stop = false;
  parentPort!.on('message', () => void (stop = true));
  let reads = 0;
  while (!stop) {
    await b.range('/k/', { limit: 20 });
    await b.get('/k/0');
    reads++;
    // let the stop message in now and then
    if (reads % 50 === 0) await new Promise((r) => setImmediate(r));
  }
  await b.close();
  parentPort!.postMessage(reads);
}

if (!isMainThread) await read((workerData as { path: string }).path);
