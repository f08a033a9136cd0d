import { currentRequest } from './http-guard.js';
import type { Logger } from './log.js';

const stackOf = (err: unknown) => (err instanceof Error ? (err.stack ?? err.message) : String(err));

/**
 * Process-level handlers for a long-running program (`mwi start`, `tbot start`):
 *
 * - an unhandled promise rejection anywhere is logged at error level with its stack and the
 *   process keeps serving (issue #9: one forgotten `.catch` must not take the service down);
 * - an uncaught exception thrown while serving a request (a callback that request scheduled) is
 *   logged with the request's id and the process keeps serving: it concerned that request only;
 * - any other uncaught exception means the process's own state is broken: it is logged with its
 *   stack and the process exits 1, so a supervisor (or `mwi start --workers`' primary) restarts
 *   it rather than leaving a half-working service up.
 *
 * Call once, early, from a CLI entry point; libraries never install process handlers.
 */
export function installProcessGuards(log: Logger): void {
  process.on('unhandledRejection', (reason) => {
    log.error('unhandled promise rejection (kept serving)', {
      request_id: currentRequest()?.id,
      error: stackOf(reason),
    });
  });
  process.on('uncaughtException', (err, origin) => {
    const req = currentRequest();
    if (req) {
      log.error('uncaught exception while serving a request (kept serving)', {
        request_id: req.id,
        origin,
        error: stackOf(err),
      });
      return;
    }
    log.error('uncaught exception outside any request; exiting', { origin, error: stackOf(err) });
    process.exit(1);
  });
}
