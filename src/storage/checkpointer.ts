// Worker thread: checkpoints a SQLite WAL database from its own connection, so the copy into the
// main file and its fsync never run on the Auth Service's event loop (an automatic checkpoint
// runs inside whichever commit crosses the threshold and stalls every request in flight).
import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';

/** Worker to owner: stop issuing writes for a moment; write again. */
export type CheckpointerMessage = 'hold' | 'release';
/** Owner to worker: no write is in progress and none will start until `release`. */
export type OwnerMessage = 'held';

export interface CheckpointerData {
  path: string;
  /** How often a PASSIVE checkpoint runs. */
  intervalMs: number;
  /** How often the WAL file's size is looked at (a stat, no lock). */
  checkMs: number;
  /** WAL size past which a TRUNCATE checkpoint resets it. */
  truncateBytes: number;
  /** Longest a TRUNCATE checkpoint waits for other connections (writers wait on it meanwhile). */
  truncateWaitMs: number;
}

const { path, intervalMs, checkMs, truncateBytes, truncateWaitMs } = workerData as CheckpointerData;
const db = new Database(path);
const BUSY_MS = 1000;
/** How long to wait for the owner to hold its writes before checkpointing anyway. */
const HOLD_ANSWER_MS = 100;
db.pragma(`busy_timeout = ${BUSY_MS}`);
db.pragma(`journal_size_limit = ${truncateBytes}`);

/** Consecutive failures after which the owner takes checkpoints back (e.g. the file went away). */
const GIVE_UP_AFTER = 20;
let failures = 0;
let sincePassive = 0;
/** TRUNCATE attempts in a row that found the log busy, and when the next may run. */
let busyStreak = 0;
let truncateAfter = 0;
const MAX_BACKOFF_MS = 5000;

function walBytes(): number {
  return statSync(`${path}-wal`, { throwIfNoEntry: false })?.size ?? 0;
}

/** Resolves when the owner has stopped issuing writes (or after a moment, if it does not answer). */
let onHeld: (() => void) | undefined;
parentPort?.on('message', (m: OwnerMessage) => {
  if (m === 'held') onHeld?.();
});
function holdWrites(): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, HOLD_ANSWER_MS);
    onHeld = () => {
      clearTimeout(timer);
      resolve();
    };
    parentPort?.postMessage('hold' satisfies CheckpointerMessage);
  });
}

/**
 * PASSIVE copies what no reader still needs and never waits for or blocks writers, but it never
 * resets the WAL while writes keep coming (a writer restarts the log only if every frame was
 * copied back when it begins): under a sustained flood the file grows without bound. Past the
 * threshold, TRUNCATE copies what is left (the PASSIVE rounds copied the rest), waits briefly for
 * readers still in the old log and truncates it to zero bytes. It needs the write lock: the owner
 * holds its writes back meanwhile (queued, not blocking its event loop) instead of sleeping in
 * SQLite's busy handler; other processes' writers wait at most truncateWaitMs.
 */
async function truncate(): Promise<void> {
  await holdWrites();
  db.pragma(`busy_timeout = ${truncateWaitMs}`);
  try {
    const [r] = db.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number; log: number }>;
    // a reader that stays in the old log (a backup, another process's long read) would make every
    // attempt hold writes for truncateWaitMs: back off, doubling, up to a few seconds. (log -1:
    // another connection was checkpointing, which costs no wait and needs no backoff.)
    if (r?.busy && r.log >= 0) busyStreak++;
    else if (!r?.busy) busyStreak = 0;
    truncateAfter = busyStreak ? Date.now() + Math.min(MAX_BACKOFF_MS, checkMs * 2 ** busyStreak) : 0;
  } finally {
    db.pragma(`busy_timeout = ${BUSY_MS}`);
    parentPort?.postMessage('release' satisfies CheckpointerMessage);
  }
}

let running = false;
setInterval(() => {
  if (running) return;
  running = true;
  void (async () => {
    sincePassive += checkMs;
    if (walBytes() > truncateBytes && Date.now() >= truncateAfter) {
      await truncate();
      sincePassive = 0;
    } else if (sincePassive >= intervalMs) {
      db.pragma('wal_checkpoint(PASSIVE)');
      sincePassive = 0;
    }
    failures = 0;
  })()
    .catch(() => {
      // another process's checkpoint holds the lock (Auth Service workers share the file): next
      // time; after too many, the thread ends and the owner checkpoints in its commits again
      if (++failures >= GIVE_UP_AFTER) process.exit(1);
    })
    .finally(() => (running = false));
}, checkMs);
