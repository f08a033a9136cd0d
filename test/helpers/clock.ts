/** A clock that moves only when a test says so (or by `step` on every reading). */
export interface FakeClock {
  /** The current time in epoch ms; pass `clock.now` itself wherever code takes a `now` function. */
  now: () => number;
  advance: (ms: number) => void;
}

/**
 * A fake clock starting at `start` (epoch ms). With `step`, each reading returns the time and
 * then moves it on by `step` ms: for code that needs distinct, increasing times (log lines).
 *
 * @example
 * const clock = fakeClock();
 * const backend = new MemoryBackend(clock.now);
 * clock.advance(61_000);
 */
export function fakeClock(start = 1_800_000_000_000, opts: { step?: number } = {}): FakeClock {
  let t = start;
  const step = opts.step ?? 0;
  return {
    now: () => {
      const now = t;
      t += step;
      return now;
    },
    advance: (ms) => void (t += ms),
  };
}
