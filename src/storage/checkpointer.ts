// Worker thread: checkpoints a SQLite WAL database from its own connection, so the copy into the
// main file and its fsync never run on the Auth Service's event loop (an automatic checkpoint
// runs inside whichever commit crosses the threshold and stalls every request in flight).
import Database from 'better-sqlite3';
import { workerData } from 'node:worker_threads';

export interface CheckpointerData {
  path: string;
  intervalMs: number;
}

const { path, intervalMs } = workerData as CheckpointerData;
const db = new Database(path);
db.pragma('busy_timeout = 1000');

/** Consecutive failures after which the owner takes checkpoints back (e.g. the file went away). */
const GIVE_UP_AFTER = 20;
let failures = 0;

setInterval(() => {
  try {
    // PASSIVE: copies what no reader still needs, never waits for or blocks writers
    db.pragma('wal_checkpoint(PASSIVE)');
    failures = 0;
  } catch (err) {
    // another process's checkpoint holds the lock (Auth Service workers share the file): next time
    if (++failures >= GIVE_UP_AFTER) throw err;
  }
}, intervalMs);
