/** Latency samples in ms → the figures the bench table prints. */
export function summarize(samples: number[], wallMs: number): { n: number; rate: number; p50: number; p99: number } {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? 0;
  return { n: s.length, rate: (s.length / wallMs) * 1000, p50: q(0.5), p99: q(0.99) };
}

/** Runs `total` tasks with at most `concurrency` in flight; returns per-task latencies and wall time. */
export async function drive(total: number, concurrency: number, task: (i: number) => Promise<void>): Promise<{ samples: number[]; wallMs: number; errors: number; firstError?: string }> {
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
