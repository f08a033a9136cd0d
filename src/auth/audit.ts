import { randomUUID } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { currentRequest } from '../util/http-guard.js';
import { createLogger } from '../util/log.js';
import { boundedLines } from '../util/lines.js';
import { escapeUnsafe } from '../util/text.js';
import { AUDIT_EVENT_TYPES } from '../api/admin.js';
import { RotatingFile } from './audit-file.js';
import { RefusalAggregator } from './audit-refusals.js';

const log = createLogger('audit');

/**
 * The line an event becomes (its time, the event, its request's id), or undefined when it repeats
 * a refusal `refusals` is counting: what every audit log writes, whatever it writes to.
 */
export function auditLine(
  event: AuditEvent,
  now: number,
  refusals: RefusalAggregator,
): Record<string, unknown> | undefined {
  const time = new Date(now).toISOString();
  if (refusals.absorb(event, time)) return undefined;
  // the request's id, as in its x-request-id header and its log lines (not part of what makes
  // two refusals identical: a summary line of repeated refusals has none)
  const request = currentRequest();
  return { time, ...event, ...(request ? { request_id: request.id } : {}) };
}

/** Event names, stable: scripts filter on them (the list is the API's). */
export type AuditEventType = (typeof AUDIT_EVENT_TYPES)[number];

export interface AuditEvent {
  event: AuditEventType;
  success: boolean;
  time?: string;
  bot_name?: string;
  bot_instance_id?: string;
  join_method?: string;
  /** Non-secret token identifier (never a `token`-method secret). */
  token_id?: string;
  generation?: number;
  resource?: string;
  user?: string;
  remote_addr?: string;
  /** Why a request failed: internal detail, kept out of API answers. */
  reason?: string;
  /** The line's own id, set when it is written. */
  uid?: string;
  [extra: string]: unknown;
}

/** Which events `recent` returns: of one type (a string is the type), refusals only, one event by uid. */
export type AuditFilter =
  string | { type?: string | undefined; failures?: boolean | undefined; uid?: string | undefined };

function matcher(filter: AuditFilter | undefined): (e: AuditEvent) => boolean {
  const f = typeof filter === 'string' ? { type: filter } : (filter ?? {});
  return (e) => (!f.type || e.event === f.type) && (!f.failures || e.success === false) && (!f.uid || e.uid === f.uid);
}

export interface AuditLog {
  emit(event: AuditEvent): void;
  /** Most recent events first. */
  recent(limit: number, filter?: AuditFilter): Promise<AuditEvent[]>;
  close(): Promise<void>;
}

/** Bounds on the audit log (mwi.yaml `audit`). */
export interface AuditFileOptions {
  /** Size in bytes past which the file (`events.log`, `refusals.log`) is rotated (default 100 MiB). */
  maxSize?: number | undefined;
  /** Rotated files kept: `events.log.1` (newest) to `events.log.N` (default 10). */
  maxFiles?: number | undefined;
  /** Identical refusals within this many ms are written once plus a count (default 1000; 0: off). */
  refusalWindowMs?: number | undefined;
}

export const AUDIT_MAX_SIZE = 100 * 1024 * 1024;
export const AUDIT_MAX_FILES = 10;
const REFUSAL_WINDOW_MS = 1000;
/** Pending text past which a turn's events are written at once rather than at the turn's end. */
const FLUSH_BYTES = 1 << 16;
/** How long, and for how many bytes, a writer waits for another's rotation before writing anyway. */
const MAX_DEFER_MS = 200;
const MAX_DEFER_BYTES = 1 << 20;
const RETRY_MS = 2;

/**
 * Audit log as JSON lines, appended with O_APPEND so concurrent writers (Auth Service workers)
 * interleave by line. Events emitted in one turn of the event loop go out together at the end of
 * that turn (whole lines, in pieces of at most a quarter of a file). The file is rotated by size
 * and only `maxFiles` old files are kept (RotatingFile), and repeated identical refusals are
 * counted rather than written each (RefusalAggregator): what an unauthenticated flood can make it
 * store is bounded (finding 6 of issue #9). A failed write is logged and its lines dropped, never
 * thrown at the caller.
 */
export class FileAuditLog implements AuditLog {
  private readonly file: RotatingFile;
  private readonly refusals: RefusalAggregator;
  private pending = '';
  private closed = false;
  /** While another writer rotates the full file: when this writer began waiting, and its retry. */
  private deferredSince = 0;
  private retry: NodeJS.Timeout | undefined;
  /** Most text one write takes (a quarter of a file at most). */
  private readonly chunk: number;

  constructor(
    path: string,
    private readonly now: () => number = Date.now,
    opts: AuditFileOptions = {},
  ) {
    const maxSize = opts.maxSize ?? AUDIT_MAX_SIZE;
    this.file = new RotatingFile(path, maxSize, opts.maxFiles ?? AUDIT_MAX_FILES);
    this.chunk = Math.max(1, Math.min(FLUSH_BYTES, Math.floor(maxSize / 4)));
    this.refusals = new RefusalAggregator(opts.refusalWindowMs ?? REFUSAL_WINDOW_MS, (line) => this.queue(line));
  }

  emit(event: AuditEvent): void {
    if (this.closed) return;
    const line = auditLine(event, this.now(), this.refusals);
    if (line) this.queue(line);
  }

  private queue(line: Record<string, unknown>): void {
    if (!this.pending) setImmediate(() => this.flush());
    // JSON escapes C0 controls but writes C1 controls and bidi marks raw (they may come from a
    // caller: a token's kid, a platform claim); as \uXXXX escapes the line parses back the same
    // and `tail -f` or a log pipeline never sees them raw
    // uid: each line's own id (Teleport's name), for `tctl tokens test --from-audit UID`
    this.pending += `${escapeUnsafe(JSON.stringify({ ...line, uid: randomUUID(), pid: process.pid }))}\n`;
    if (this.pending.length > FLUSH_BYTES && !this.retry) this.flush();
  }

  private flush(force = false): void {
    if (!this.pending || this.closed) return;
    let rest = this.pending;
    this.pending = '';
    // wait for another writer's rotation briefly (lines held in memory), never without bound
    force ||=
      this.deferredSince > 0 &&
      (performance.now() - this.deferredSince > MAX_DEFER_MS || rest.length > MAX_DEFER_BYTES);
    try {
      while (rest) {
        // whole lines, in pieces a file can take, so even lines held back fill files in turn;
        // a forced write is one piece: the rest waits for the rotation again
        const cut =
          rest.length <= this.chunk
            ? rest.length
            : rest.lastIndexOf('\n', this.chunk - 1) + 1 || rest.indexOf('\n') + 1 || rest.length;
        const written = this.file.append(rest.slice(0, cut), force);
        force = false;
        if (!written) {
          this.pending = rest;
          this.deferredSince ||= performance.now();
          this.retry ??= setTimeout(() => {
            this.retry = undefined;
            this.flush();
          }, RETRY_MS);
          return;
        }
        rest = rest.slice(cut);
      }
      this.deferredSince = 0;
    } catch (err) {
      log.error('audit log write failed; events dropped', {
        error: (err as NodeJS.ErrnoException).code ?? String(err),
        lines: rest.split('\n').length - 1,
      });
    }
  }

  /** Reads the current file, then the rotated ones, until `limit` events are found. */
  async recent(limit: number, filter?: AuditFilter): Promise<AuditEvent[]> {
    this.flush();
    return readRecent(this.file.paths(), limit, matcher(filter));
  }

  async close(): Promise<void> {
    this.refusals.closeAll();
    // lines held back for another writer's rotation: wait for it a little, then write them anyway
    const end = performance.now() + MAX_DEFER_MS;
    for (;;) {
      clearTimeout(this.retry);
      this.retry = undefined;
      this.flush(performance.now() >= end);
      if (!this.pending) break;
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
    this.closed = true;
    this.file.close();
  }
}

/** Longest audit line read back (an event is a line of a few hundred bytes): longer ones are skipped. */
const MAX_LINE_BYTES = 1024 * 1024;

/**
 * The newest `limit` events (of `type`, if given) across `paths`, newest file first. All files are
 * opened before any is read, and a file seen twice (a rotation in between renamed it) is read
 * once, so a concurrent rotation can at worst leave out events, never repeat them.
 */

async function readRecent(paths: string[], limit: number, match: (e: AuditEvent) => boolean): Promise<AuditEvent[]> {
  const handles: FileHandle[] = [];
  const seen = new Set<number>();
  for (const p of paths) {
    const fh = await open(p, 'r').catch(() => undefined);
    if (!fh) continue;
    const { ino } = await fh.stat();
    if (seen.has(ino)) await fh.close();
    else {
      seen.add(ino);
      handles.push(fh);
    }
  }
  const out: AuditEvent[] = [];
  try {
    for (const fh of handles) {
      if (out.length >= limit) break;
      // the last `want` matching events of this file, in a ring (no shifting of a large array)
      const want = limit - out.length;
      const ring: AuditEvent[] = [];
      let seenInFile = 0;
      for await (const line of boundedLines(fh, MAX_LINE_BYTES)) {
        if (!line) continue;
        let e: AuditEvent;
        try {
          e = JSON.parse(line) as AuditEvent;
        } catch {
          continue;
        }
        if (!match(e)) continue;
        ring[seenInFile++ % want] = e;
      }
      for (let i = 1; i <= Math.min(want, seenInFile); i++) out.push(ring[(seenInFile - i) % want]!);
    }
  } finally {
    await Promise.all(handles.map((fh) => fh.close().catch(() => {})));
  }
  return out;
}
