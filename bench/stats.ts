/** Latency samples in ms → the figures the bench table prints. */
export function summarize(samples: number[], wallMs: number): { n: number; rate: number; p50: number; p99: number } {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0;
  return { n: s.length, rate: (s.length / wallMs) * 1000, p50: q(0.5), p99: q(0.99) };
}

/** Runs `total` tasks with at most `concurrency` in flight; returns per-task latencies and wall time. */
export async function drive(
  total: number,
  concurrency: number,
  task: (i: number) => Promise<void>,
): Promise<{ samples: number[]; wallMs: number; errors: number; firstError?: string }> {
  const samples: number[] = [];
  let next = 0;
  let errors = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, total) }, async () => {
      for (let i = next++; i < total; i = next++) {
        const s = performance.now();
        try {
          await task(i);
          samples.push(performance.now() - s);
        } catch (err) {
          errors++;
          firstError ??= err instanceof Error ? err.message : String(err);
        }
      }
    }),
  );
  return { samples, wallMs: performance.now() - t0, errors, ...(firstError ? { firstError } : {}) };
}

/**
 * Open loop: starts task i at t0 + i / rate whatever earlier tasks are doing, and measures each
 * latency from its scheduled start (so a stall shows up in the figures instead of delaying the
 * schedule). For "p99 at half the peak rate".
 */
export async function pace(
  total: number,
  ratePerSec: number,
  task: (i: number) => Promise<void>,
): Promise<{ samples: number[]; wallMs: number; errors: number; firstError?: string }> {
  const samples: number[] = [];
  const running: Promise<void>[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  for (let i = 0; i < total;) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) * ratePerSec) / 1000) + 1);
    for (; i < due; i++) {
      const scheduled = t0 + (i * 1000) / ratePerSec;
      running.push(
        task(i).then(
          () => void samples.push(performance.now() - scheduled),
          (err: unknown) => {
            errors++;
            firstError ??= err instanceof Error ? err.message : String(err);
          },
        ),
      );
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(running);
  return { samples, wallMs: performance.now() - t0, errors, ...(firstError ? { firstError } : {}) };
}

/** Things (identities, clients) used by one task at a time; `take` waits while all are in use. */
export class Pool<T> {
  private readonly waiting: Array<(t: T) => void> = [];

  constructor(private readonly free: T[]) {}

  all(): T[] {
    return [...this.free];
  }

  take(): Promise<T> {
    const t = this.free.pop();
    return t !== undefined ? Promise.resolve(t) : new Promise((r) => this.waiting.push(r));
  }

  give(t: T): void {
    const w = this.waiting.shift();
    if (w) w(t);
    else this.free.push(t);
  }
}
