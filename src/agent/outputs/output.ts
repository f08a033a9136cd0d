import type { Lifetime } from '../lifetime.js';
import { LoopService, type BotDeps, type Service } from '../service.js';

/** What every output runs: a generation of its files, on its schedule. */
export interface OutputJob {
  /** How log lines name it ("output NAME"). */
  label: string;
  /** The output's lifetime, and whether it set its own renewal_interval. */
  cfg: Lifetime & { renewal_interval?: string | undefined };
  /** Writes the files; returns warnings about what it wrote (shown on /readyz). */
  generate(): Promise<string[] | void>;
}

/**
 * The service of an output: it writes after each renewal of the bot identity. An output without
 * its own renewal_interval renews with the identity (one timer, not two drifting ones: its own
 * interval is then only a fallback, twice the bot's); one with its own interval also runs on that.
 */
export function outputService(name: string, deps: BotDeps, job: OutputJob): Service {
  return new LoopService(name, deps, {
    label: job.label,
    intervalMs: job.cfg.renewal_interval ? job.cfg.renewalIntervalMs : deps.cfg.renewalIntervalMs * 2,
    // a resumed daemon's identity renewal triggers the first write
    runFirst: !deps.resumed,
    counters: { ok: 'tbot_output_writes_total', failed: 'tbot_output_failures_total' },
    afterRenewal: true,
    job: () => job.generate(),
  });
}
