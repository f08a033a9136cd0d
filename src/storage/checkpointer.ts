// Worker thread: checkpoints a SQLite WAL database from its own connection, so the copy into the
// main file and its fsync never run on the Auth Service's event loop (an automatic checkpoint
// runs inside whichever commit crosses the threshold and stalls every request in flight).
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';

export interface CheckpointerData {
  path: string;
  intervalMs: number;
}

const { path, intervalMs } = workerData as CheckpointerData;
const db = new Database(path);
db.pragma('busy_timeout = 1000');

setInterval(() => {
  try {
    // PASSIVE: copies what no reader still needs, never waits for or blocks writers
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (err) {
    // another process's checkpoint holds the lock, or the file went away: try again next time,
    // and tell the owner (it falls back to automatic checkpoints if this keeps failing)
    parentPort?.postMessage({ error: err instanceof Error ? err.message : String(err) });
  }
}, intervalMs);
