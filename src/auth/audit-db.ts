import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { MwiError } from '../errors.js';
import type { PostgresBackend } from '../storage/postgres.js';
import { bools, storageError, texts } from '../storage/postgres-pool.js';
import { LOCK_CLASS, LOCKS } from '../storage/postgres-schema.js';
import { createLogger } from '../util/log.js';
import { auditLine, type AuditEvent, type AuditFilter, type AuditLog } from './audit.js';
import { RefusalAggregator } from './audit-refusals.js';

const log = createLogger('audit');

/** Events held in memory while the database cannot take them; past this the oldest are dropped. */
const MAX_PENDING = 10_000;
const RETRY_MS = 1000;
/** How long events wait to be written with the next ones. */
const FLUSH_MS = 20;
/** Most rows one INSERT takes. */
const INSERT_ROWS = 1000;
/** Rows one retention step deletes. */
const PURGE_ROWS = 1000;
/** How often the retention purge runs (as Teleport's PostgreSQL audit log cleans up). */
export const AUDIT_PURGE_INTERVAL_MS = 3600_000;
/**
 * Refusals kept at most, whatever their age: they are the events a caller without credentials can
 * cause, so what a flood can store is bounded (the file log bounds them by its rotation).
 */
export const MAX_REFUSAL_ROWS = 1_000_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface Row {
  time: string;
  event: string;
  success: boolean;
  uid: string;
  body: string;
}

export interface DbAuditOptions {
  /** This log takes the anonymous refusals (SplitAuditLog's second log), kept apart in the table. */
  refusals: boolean;
  now?: () => number;
  /** Remove events older than this, once an hour, one replica at a time; unset: this log does not purge. */
  retentionMs?: number | undefined;
  /** Identical refusals within this many ms are written once plus a count (default 1000; 0: off). */
  refusalWindowMs?: number;
}

/**
 * The audit log in the shared PostgreSQL database (mwi_events), so that every replica's events
 * are read back by any replica (`tctl audit ls`). Events emitted in one turn of the event loop
 * are written together in one INSERT; while the database is down they are held in memory
 * (MAX_PENDING at most, oldest dropped first, each drop logged) and written when it is back. A
 * failure is logged, never thrown at the caller, as with the file log. Each line carries the same
 * fields as a file log line (time, uid, pid, request_id) and is returned as written.
 */
export class DbAuditLog implements AuditLog {
  private pending: Row[] = [];
  private writing: Promise<void> | undefined;
  private retry: NodeJS.Timeout | undefined;
  private soon: NodeJS.Timeout | undefined;
  private purgeTimer: NodeJS.Timeout | undefined;
  private readonly refusalLines: RefusalAggregator;
  private readonly now: () => number;
  private closed = false;
  private failing = false;

  constructor(
    private readonly db: PostgresBackend,
    private readonly opts: DbAuditOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.refusalLines = new RefusalAggregator(opts.refusalWindowMs ?? 1000, (line) => this.queue(line));
    if (opts.retentionMs)
      this.purgeTimer = setInterval(() => {
        void this.purge().catch((err) => log.error('audit retention purge failed', { error: String(err) }));
      }, AUDIT_PURGE_INTERVAL_MS).unref();
  }

  private get pool(): pg.Pool {
    return this.db.pool;
  }

  emit(event: AuditEvent): void {
    if (this.closed) return;
    const line = auditLine(event, this.now(), this.refusalLines);
    if (line) this.queue(line);
  }

  private queue(line: Record<string, unknown>): void {
    const uid = randomUUID();
    const full = { ...line, uid, pid: process.pid };
    this.pending.push({
      time: String(line.time),
      event: String(line.event),
      success: line.success !== false,
      uid,
      body: JSON.stringify(full),
    });
    if (this.pending.length > MAX_PENDING) {
      const dropped = this.pending.splice(0, this.pending.length - MAX_PENDING);
      log.error('audit events dropped: the database has not taken them', { events: dropped.length });
    }
    // a short wait gathers a busy moment's events into one INSERT (recent() writes them first)
    if (!this.writing && !this.retry && !this.soon) this.soon = setTimeout(() => void this.flush(), FLUSH_MS);
  }

  /** Writes what is pending; resolves once written (or once the attempt failed). */
  private flush(): Promise<void> {
    clearTimeout(this.soon);
    this.soon = undefined;
    this.writing ??= (async () => {
      while (this.pending.length > 0) {
        const rows = this.pending.slice(0, INSERT_ROWS);
        try {
          // one round trip; the audit log does not wait for its commit to reach the disk (as the
          // file log does not fsync): a crash of the database server may lose the last moment's events
          await this.pool.query(
            'BEGIN; SET LOCAL synchronous_commit = off; ' +
              'INSERT INTO mwi_events (time, event, success, refusal, uid, body) SELECT t::timestamptz, e, s, ' +
              `${String(this.opts.refusals)}, u::uuid, b FROM unnest(${texts(rows.map((r) => r.time))}, ` +
              `${texts(rows.map((r) => r.event))}, ${bools(rows.map((r) => r.success))}, ` +
              `${texts(rows.map((r) => r.uid))}, ${texts(rows.map((r) => r.body))}) AS x(t, e, s, u, b); COMMIT`,
          );
        } catch (err) {
          if (!this.failing) {
            const e = storageError(err, this.db.target, 'audit log');
            log.error('audit events not written yet: the database is unavailable; retrying', {
              error: e.detail ?? e.message,
              pending: this.pending.length,
            });
          }
          this.failing = true;
          if (!this.closed)
            this.retry ??= setTimeout(() => {
              this.retry = undefined;
              void this.flush();
            }, RETRY_MS).unref();
          return;
        }
        this.pending.splice(0, rows.length);
        if (this.failing) log.info('audit events written again', { pending: this.pending.length });
        this.failing = false;
      }
    })().finally(() => (this.writing = undefined));
    return this.writing;
  }

  async recent(limit: number, filter?: AuditFilter): Promise<AuditEvent[]> {
    await this.flush();
    const f = typeof filter === 'string' ? { type: filter } : (filter ?? {});
    // a uid that is not a UUID names no event (and must not reach the uuid column)
    if (f.uid !== undefined && !UUID.test(f.uid)) return [];
    try {
      const { rows } = await this.pool.query<{ body: string }>(
        'SELECT body FROM mwi_events WHERE refusal = $1 AND ($2::text IS NULL OR event = $2) ' +
          'AND (NOT $3::boolean OR success = false) AND ($4::uuid IS NULL OR uid = $4) ' +
          'ORDER BY time DESC, id DESC LIMIT $5',
        [this.opts.refusals, f.type ?? null, f.failures === true, f.uid ?? null, limit],
      );
      return rows.map((r) => JSON.parse(r.body) as AuditEvent);
    } catch (err) {
      throw storageError(err, this.db.target, 'audit log');
    }
  }

  /**
   * Removes events older than the retention period, and refusals past MAX_REFUSAL_ROWS, in
   * batches. One replica at a time (an advisory lock; the others skip). Resolves to the rows removed.
   */
  async purge(signal?: AbortSignal): Promise<number> {
    if (!this.opts.retentionMs) throw new TypeError('this audit log has no retention period');
    const c = await this.pool.connect();
    let removed = 0;
    try {
      const got = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [
        LOCK_CLASS,
        LOCKS.auditPurge,
      ]);
      if (!got.rows[0]?.ok) return 0;
      try {
        const cutoff = new Date(this.now() - this.opts.retentionMs).toISOString();
        const steps = [
          [
            'DELETE FROM mwi_events WHERE id IN (SELECT id FROM mwi_events WHERE time < $1 ORDER BY time LIMIT $2)',
            [cutoff, PURGE_ROWS],
          ],
          [
            'DELETE FROM mwi_events WHERE id IN (SELECT id FROM mwi_events WHERE refusal AND id < (SELECT id FROM ' +
              'mwi_events WHERE refusal ORDER BY id DESC OFFSET $1 LIMIT 1) ORDER BY id LIMIT $2)',
            [MAX_REFUSAL_ROWS - 1, PURGE_ROWS],
          ],
        ] as const;
        for (const [sql, params] of steps)
          for (let n = PURGE_ROWS; n === PURGE_ROWS && !signal?.aborted && !this.closed;) {
            n = (await c.query(sql, [...params])).rowCount ?? 0;
            removed += n;
          }
      } finally {
        await c.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_CLASS, LOCKS.auditPurge]);
      }
      return removed;
    } catch (err) {
      throw err instanceof MwiError ? err : storageError(err, this.db.target, 'audit retention purge');
    } finally {
      c.release();
    }
  }

  /** Writes what is pending (waiting a few seconds at most for the database), then stops. */
  async close(): Promise<void> {
    this.refusalLines.closeAll();
    clearInterval(this.purgeTimer);
    clearTimeout(this.soon);
    clearTimeout(this.retry);
    this.retry = undefined;
    const deadline = Date.now() + 3000;
    while (this.pending.length > 0 && Date.now() < deadline) {
      await this.flush();
      if (this.pending.length > 0) await new Promise((r) => setTimeout(r, 200));
    }
    clearTimeout(this.retry);
    if (this.pending.length > 0)
      log.error('audit events dropped at shutdown: the database did not take them', { events: this.pending.length });
    this.closed = true;
  }
}
