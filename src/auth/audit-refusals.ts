import { performance } from 'node:perf_hooks';
import type { AuditEvent } from './audit.js';

interface Window {
  event: AuditEvent;
  /** Repeats absorbed since the first one, which was written on its own. */
  count: number;
  firstTime: string;
  lastTime: string;
  /** performance.now() when the window closes. */
  closes: number;
}

/**
 * Collapses repeated identical refusals (finding 6 of issue #9: a flood of failed joins grew the
 * audit log by a line per request). The first refusal of a kind is written as usual; identical
 * ones (same event and every field: reason, remote address, token, bot, ...) within `windowMs`
 * are only counted, and when the window closes one summary line says how many there were. A
 * flood therefore writes O(distinct refusals) lines, not O(requests). Successes pass through.
 */
export class RefusalAggregator {
  /** Open windows by key, in the order they opened (which is also the order they close). */
  private readonly windows = new Map<string, Window>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly windowMs: number,
    private readonly write: (line: Record<string, unknown>) => void,
    /** Most windows open at once; past it the oldest closes early (memory stays bounded). */
    private readonly maxOpen = 10_000,
  ) {}

  /** Returns true if the event was absorbed into an open window (the caller writes nothing). */
  absorb(event: AuditEvent, time: string): boolean {
    if (event.success !== false || this.windowMs <= 0) return false;
    const key = JSON.stringify(event);
    const open = this.windows.get(key);
    if (open && performance.now() < open.closes) {
      open.count++;
      open.lastTime = time;
      return true;
    }
    if (open) this.close(key, open);
    if (this.windows.size >= this.maxOpen) {
      const [oldestKey, oldest] = this.windows.entries().next().value as [string, Window];
      this.close(oldestKey, oldest);
    }
    this.windows.set(key, {
      event,
      count: 0,
      firstTime: time,
      lastTime: time,
      closes: performance.now() + this.windowMs,
    });
    this.schedule();
    return false;
  }

  /** Closes every window now (on shutdown). */
  closeAll(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const [key, w] of this.windows) this.close(key, w);
  }

  private close(key: string, w: Window): void {
    this.windows.delete(key);
    if (w.count > 0) this.write({ time: w.lastTime, ...w.event, count: w.count, first_time: w.firstTime });
  }

  private schedule(): void {
    if (this.timer) return;
    const head = this.windows.values().next().value;
    if (!head) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        const now = performance.now();
        for (const [key, w] of this.windows) {
          if (w.closes > now) break;
          this.close(key, w);
        }
        this.schedule();
      },
      Math.max(0, head.closes - performance.now()),
    ).unref();
  }
}
