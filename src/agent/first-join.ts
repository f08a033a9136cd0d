import { isMwiError, type ErrorCode } from '../errors.js';
import type { Logger } from '../util/log.js';
import type { Health, RetryPolicy } from './runtime.js';

/**
 * Failures of a join that another attempt can cure: the Auth Service is down or busy, or failed
 * inside. Everything else is final: a refused join (JOIN_DENIED: the token is unknown, expired,
 * already used, or the platform proof failed its rules; asking again with the same token gets the
 * same answer), a lock, a CA pin that does not match, a configuration or request error.
 */
const TRANSIENT: ReadonlySet<ErrorCode> = new Set([
  'UNREACHABLE',
  'RATE_LIMITED',
  'INTERNAL',
  'STORAGE',
  'COMPARE_FAILED',
]);

/** Whether a failed join may be tried again. */
export function joinRetryable(err: unknown): boolean {
  return isMwiError(err) && TRANSIENT.has(err.code);
}

/**
 * The wait before retry `attempt` (1, 2, ...): the policy's delay doubling up to its cap, less up
 * to `jitter` of it at random, so that a fleet started together does not retry in lockstep.
 */
export function backoffDelay(attempt: number, retry: RetryPolicy, jitter = 0.2, random = Math.random): number {
  const base = Math.min(retry.maxMs, retry.initialMs * 2 ** (attempt - 1));
  return Math.max(10, Math.round(base * (1 - random() * jitter)));
}

/** Resolves after `ms`, or at once (false) when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  if (signal.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve(!signal.aborted);
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

export interface FirstJoinOptions {
  retry: RetryPolicy;
  log: Logger;
  signal: AbortSignal;
  /** Where /readyz shows the join while it is retried. */
  health: Health;
}

/**
 * A daemon's first join (Teleport's tbot also waits for its Auth Service): tried until it
 * succeeds, with capped exponential backoff and jitter, each failure logged with its reason;
 * a final refusal (see TRANSIENT) is logged as such and thrown. Returns false when `signal`
 * aborted first (tbot was told to stop). A one-shot run calls `join` once instead.
 */
export async function joinWithRetry(join: () => Promise<void>, opts: FirstJoinOptions): Promise<boolean> {
  const { retry, log, signal, health } = opts;
  for (let attempt = 1; ; attempt++) {
    try {
      await join();
      return true;
    } catch (err) {
      if (!joinRetryable(err)) {
        if (isMwiError(err, 'JOIN_DENIED') || isMwiError(err, 'LOCKED')) {
          log.error(
            'the Auth Service refused the join: not retried (a refusal is final: the token is unknown, expired, ' +
              'already used or locked, or the proof failed its rules; the Auth Service audit log has the reason)',
            { error: err.message },
          );
        }
        throw err;
      }
      const delay = backoffDelay(attempt, retry);
      const reason = err instanceof Error ? err.message : String(err);
      Object.assign(health, { status: 'unhealthy', reason: `joining: ${reason}` });
      log.warn('first join failed, retrying', {
        attempt,
        retry_in: `${(delay / 1000).toFixed(1)}s`,
        error: reason,
      });
      if (!(await sleep(delay, signal))) return false;
    }
  }
}
