import { createReadStream, createWriteStream, mkdirSync, statSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';

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

/**
 * Audit log as JSON lines in one file, appended with O_APPEND so concurrent writers interleave by
 * line. Events emitted in one turn of the event loop go out in one write (whole lines only).
 */
export class FileAuditLog implements AuditLog {
  private readonly out: WriteStream;
  private pending = '';

  constructor(
    private readonly path: string,
    private readonly now: () => number = Date.now,
  ) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.out = createWriteStream(path, { flags: 'a', mode: 0o600 });
  }

  emit(event: AuditEvent): void {
    if (!this.pending) setImmediate(() => this.flush());
    this.pending += `${JSON.stringify({ time: new Date(this.now()).toISOString(), ...event, pid: process.pid })}\n`;
    if (this.pending.length > 1 << 16) this.flush();
  }

  private flush(): void {
    if (!this.pending || this.out.writableEnded) return;
    this.out.write(this.pending);
    this.pending = '';
  }

  async recent(limit: number, type?: string): Promise<AuditEvent[]> {
    this.flush();
    // writes are ordered: once this empty write is done, every earlier event is in the file
    await new Promise<void>((r) => this.out.write('', () => r()));
    try {
      statSync(this.path);
    } catch {
      return [];
    }
    const ring: AuditEvent[] = [];
    const rl = createInterface({ input: createReadStream(this.path), crlfDelay: Infinity });
    for await (const line of rl) {
      if (!line) continue;
      let e: AuditEvent;
      try {
        e = JSON.parse(line) as AuditEvent;
      } catch {
        continue;
      }
      if (type && e.event !== type) continue;
      ring.push(e);
      if (ring.length > limit) ring.shift();
    }
    return ring.reverse();
  }

  async close(): Promise<void> {
    this.flush();
    await new Promise<void>((r) => this.out.end(r));
  }
}
