import { open, type FileHandle } from 'node:fs/promises';
import { createLogger } from '../util/log.js';
import { RotatingFile } from './audit-file.js';
import { RefusalAggregator } from './audit-refusals.js';

const log = createLogger('audit');

/** Event names, stable: scripts filter on them. */
export type AuditEventType =
  | 'bot.join'
  | 'bot.challenge'
  | 'bot.renew'
  | 'bot.certs'
  | 'bot.heartbeat'
  | 'token.use'
  | 'lock.created'
  | 'lock.deleted'
  | 'instance.locked'
  | 'resource.created'
  | 'resource.updated'
  | 'resource.deleted'
  | 'auth.start';

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
  [extra: string]: unknown;
}

export interface AuditLog {
  emit(event: AuditEvent): void;
  /** Most recent events first. */
  recent(limit: number, type?: string): Promise<AuditEvent[]>;
  close(): Promise<void>;
}

/** Bounds on the audit log (mwi.yaml `audit`). */
export interface AuditFileOptions {
  /** Size in bytes past which `events.log` is rotated (default 100 MiB). */
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

/**
 * Audit log as JSON lines, appended with O_APPEND so concurrent writers (Auth Service workers)
 * interleave by line. Events emitted in one turn of the event loop go out in one write (whole
 * lines only), at the end of that turn. The file is rotated by size and only `maxFiles` old files
 * are kept (RotatingFile), and repeated identical refusals are counted rather than written each
 * (RefusalAggregator): what an unauthenticated flood can make it store is bounded (finding 6 of
 * issue #9). A failed write is logged and its lines dropped, never thrown at the caller.
 */
export class FileAuditLog implements AuditLog {
  private readonly file: RotatingFile;
  private readonly refusals: RefusalAggregator;
  private pending = '';
  private closed = false;

  constructor(
    path: string,
    private readonly now: () => number = Date.now,
    opts: AuditFileOptions = {},
  ) {
    this.file = new RotatingFile(path, opts.maxSize ?? AUDIT_MAX_SIZE, opts.maxFiles ?? AUDIT_MAX_FILES);
    this.refusals = new RefusalAggregator(opts.refusalWindowMs ?? REFUSAL_WINDOW_MS, (line) => this.queue(line));
  }

  emit(event: AuditEvent): void {
    if (this.closed) return;
    const time = new Date(this.now()).toISOString();
    if (this.refusals.absorb(event, time)) return;
    this.queue({ time, ...event });
  }

  private queue(line: Record<string, unknown>): void {
    if (!this.pending) setImmediate(() => this.flush());
    this.pending += `${JSON.stringify({ ...line, pid: process.pid })}\n`;
    if (this.pending.length > FLUSH_BYTES) this.flush();
  }

  private flush(): void {
    if (!this.pending || this.closed) return;
    const text = this.pending;
    this.pending = '';
    try {
      this.file.append(text);
    } catch (err) {
      log.error('audit log write failed; events dropped', { error: (err as NodeJS.ErrnoException).code ?? String(err), lines: text.split('\n').length - 1 });
    }
  }

  /** Reads the current file, then the rotated ones, until `limit` events are found. */
  async recent(limit: number, type?: string): Promise<AuditEvent[]> {
    this.flush();
    return readRecent(this.file.paths(), limit, type);
  }

  async close(): Promise<void> {
    this.refusals.closeAll();
    this.flush();
    this.closed = true;
    this.file.close();
  }
}

/**
 * The newest `limit` events (of `type`, if given) across `paths`, newest file first. All files are
 * opened before any is read, and a file seen twice (a rotation in between renamed it) is read
 * once, so a concurrent rotation can at worst leave out events, never repeat them.
 */
async function readRecent(paths: string[], limit: number, type?: string): Promise<AuditEvent[]> {
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
      const want = limit - out.length;
      const ring: AuditEvent[] = [];
      for await (const line of fh.readLines({ autoClose: false })) {
        if (!line) continue;
        let e: AuditEvent;
        try {
          e = JSON.parse(line) as AuditEvent;
        } catch {
          continue;
        }
        if (type && e.event !== type) continue;
        ring.push(e);
        if (ring.length > want) ring.shift();
      }
      out.push(...ring.reverse());
    }
  } finally {
    await Promise.all(handles.map((fh) => fh.close().catch(() => {})));
  }
  return out;
}
