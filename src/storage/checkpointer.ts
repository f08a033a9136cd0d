// Worker thread: checkpoints a SQLite WAL database from its own connection, so the copy into the
// main file and its fsync never run on the Auth Service's event loop (an automatic checkpoint
// runs inside whichever commit crosses the threshold and stalls every request in flight).
import Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { sqliteOptions } from '../util/native.js';

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
  /** WAL size past which the backoff no longer applies: disk before throughput. */
  maxBytes: number;
  /** Longest a TRUNCATE checkpoint waits for other connections (writers wait on it meanwhile). */
  truncateWaitMs: number;
  /** In a single executable: the native module the owner loaded, so the process has one SQLite. */
  addonPath: string | undefined;
}

const { path, intervalMs, checkMs, truncateBytes, maxBytes, truncateWaitMs, addonPath } =
  workerData as CheckpointerData;
const db = new Database(path, sqliteOptions(addonPath));
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
/** TRUNCATE attempts in one hold of the owner's writes, past maxBytes (each waits truncateWaitMs at most). */
const MAX_HELD_ATTEMPTS = 4;
const OTHER_CHECKPOINT_WAIT_MS = 25;

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
    for (let attempt = 1; ; attempt++) {
      const [r] = db.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number; log: number }>;
      // a reader that stays in the old log (a backup, another process's long read) would make
      // every attempt hold writes for truncateWaitMs: back off, doubling, up to a few seconds.
      // (log -1: another connection was checkpointing, which costs no wait and needs no backoff.)
      if (r?.busy && r.log >= 0) busyStreak++;
      else if (!r?.busy) busyStreak = 0;
      // past maxBytes, the writes stay held and it tries again, a few times (within the owner's
      // one-second hold): the readers in the old log finish, new ones read the main file
      if (!r?.busy || walBytes() <= maxBytes || attempt >= MAX_HELD_ATTEMPTS) break;
      // another connection's checkpoint (another process's checkpointer) answers at once: give it
      // a moment to finish rather than spending every attempt on it
      if (r.log < 0) await new Promise((res) => setTimeout(res, OTHER_CHECKPOINT_WAIT_MS));
    }
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
    // past maxBytes every round tries again, backoff or not: readers that keep the old log busy
    // then slow the writers down (held for truncateWaitMs each time) instead of the disk filling
    const wal = walBytes();
    if (wal > truncateBytes && (Date.now() >= truncateAfter || wal > maxBytes)) {
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
