import type { Logger } from '../util/log.js';

export interface RetryPolicy {
  /** First retry delay; doubles on each failure up to `maxMs`. */
  initialMs: number;
  maxMs: number;
}

export interface Health {
  status: 'initializing' | 'healthy' | 'unhealthy';
  reason?: string;
  lastSuccess?: number;
  /** What works but deserves attention (e.g. a certificate that can log in nowhere); not a failure. */
  warnings?: string[];
}

export interface IntervalOptions {
  name: string;
  intervalMs: number;
  /** Fraction of the interval subtracted at random, so a fleet does not renew in lockstep. */
  jitter?: number;
  retry: RetryPolicy;
  log: Logger;
  /** Run once immediately (default) or wait one interval first. */
  runFirst?: boolean;
  /**
   * Healthy before the first run: what the job keeps fresh was just made by someone else (the
   * identity renewal after a join), so waiting one interval is not "initializing".
   */
  healthyAtStart?: boolean;
}

/**
 * Every periodic job in tbot runs through this: run, wait the interval (with jitter), retry
 * failures with capped exponential backoff, report health, stop when `run`'s signal aborts.
 * `trigger()` runs the job now (SIGHUP, or a dependency renewed).
 */
export class IntervalRunner {
  readonly health: Health;
  private wake: (() => void) | undefined;
  private triggered = false;

  constructor(
    private readonly fn: () => Promise<void>,
    private readonly opts: IntervalOptions,
  ) {
    this.health = opts.healthyAtStart ? { status: 'healthy', lastSuccess: Date.now() } : { status: 'initializing' };
  }

  trigger(): void {
    this.triggered = true;
    this.wake?.();
  }

  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    // an abort that happened while the job ran will not fire again: check it here
    if (this.triggered || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        signal.removeEventListener('abort', done);
        this.wake = undefined;
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wake = done;
      signal.addEventListener('abort', done, { once: true });
    });
  }

  async run(signal: AbortSignal): Promise<void> {
    const { retry, log, name } = this.opts;
    let failures = 0;
    if (this.opts.runFirst === false) await this.sleep(this.nextInterval(), signal);
    while (!signal.aborted) {
      this.triggered = false;
      try {
        await this.fn();
        failures = 0;
        Object.assign(this.health, { status: 'healthy', reason: undefined, lastSuccess: Date.now() });
        await this.sleep(this.nextInterval(), signal);
      } catch (err) {
        if (signal.aborted) break;
        failures++;
        const delay = Math.min(retry.maxMs, retry.initialMs * 2 ** (failures - 1));
        const reason = err instanceof Error ? err.message : String(err);
        Object.assign(this.health, { status: 'unhealthy', reason });
        log.warn(`${name} failed, retrying`, {
          attempt: failures,
          retry_in: `${Math.round(delay / 1000)}s`,
          error: reason,
        });
        await this.sleep(delay, signal);
      }
    }
  }

  private nextInterval(): number {
    const jitter = this.opts.jitter ?? 0.1;
    return Math.max(10, Math.round(this.opts.intervalMs * (1 - Math.random() * jitter)));
  }
}

/** A simple FIFO mutex: tbot serializes every call that uses its internal identity. */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();

  async run<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.tail;
    let release!: () => void;
    this.tail = new Promise((r) => (release = r));
    await prev;
    try {
      return await fn();
    } finally {
      release();
    }
  }
}
