import type { Logger } from '../util/log.js';
import type { AuditEvent, AuditLog } from './audit.js';
import { RefusalAggregator } from './audit-refusals.js';

/**
 * The fields of an audit event a log line repeats, under their log names. A list, not "every
 * field but": an event that one day carries something secret must not reach the log by default.
 * Token ids (`h-…` for secret names), keyed token fingerprints and key fingerprints are not secrets.
 */
const LOGGED: ReadonlyArray<[keyof AuditEvent & string, string]> = [
  ['bot_name', 'bot'],
  ['bot_instance_id', 'instance'],
  ['join_method', 'method'],
  ['token_id', 'token_id'],
  ['token_fingerprint', 'token_fingerprint'],
  ['generation', 'generation'],
  ['refresh', 'refresh'],
  ['retried', 'retried'],
  ['matched_rule', 'matched_rule'],
  ['resource', 'resource'],
  ['target', 'target'],
  // a lock's message: `message` is the log line's own key
  ['message', 'lock_message'],
  ['user', 'user'],
  ['route', 'route'],
  ['expires', 'expires'],
  ['remote_addr', 'remote_addr'],
  ['reason', 'reason'],
  ['count', 'more'],
  ['first_time', 'since'],
];

function fields(e: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(LOGGED.filter(([k]) => e[k] !== undefined).map(([k, name]) => [name, e[k]]));
}

/** The line an event gets (level and message), or none. */
function lineOf(e: AuditEvent): { level: 'info' | 'debug'; message: string } | undefined {
  const ok = e.success;
  switch (e.event) {
    case 'bot.join':
      return { level: 'info', message: ok ? 'join accepted' : 'join refused' };
    case 'bot.challenge':
      // a refused challenge still gets a decoy answer: the caller is not told (join.ts)
      return { level: 'info', message: ok ? 'join challenge issued' : 'join challenge refused (a decoy was sent)' };
    case 'bot.renew':
      return { level: 'info', message: ok ? 'renewal accepted' : 'renewal refused' };
    case 'bot.certs':
      return {
        level: ok ? 'debug' : 'info',
        message: ok ? 'output certificates issued' : 'output certificates refused',
      };
    case 'instance.locked':
      return { level: 'info', message: 'bot instance locked by the Auth Service' };
    case 'instance.ended':
      // anyone holding the identity can end it: an operator should see it like a lock
      return { level: 'info', message: 'bot instance ended by a holder of its identity' };
    case 'lock.created':
      return { level: 'info', message: 'lock created' };
    case 'lock.deleted':
      return { level: 'info', message: 'lock removed' };
    case 'admin.request':
      return { level: ok ? 'debug' : 'info', message: ok ? 'operator request' : 'operator request refused' };
    case 'resource.created':
      if (e.resource?.startsWith('operator_identity/')) return { level: 'info', message: 'operator identity issued' };
      return { level: 'debug', message: 'resource created' };
    default:
      return undefined;
  }
}

/**
 * Logs, at INFO, why a join, challenge, renewal or lock happened or was refused: one line per
 * audit event of those kinds, with the event's non-secret fields (see LOGGED). Identical refusals
 * within `windowMs` are logged once and then as one line with their count, as the audit log
 * writes them (a flood of refusals must not flood the log either). Returns the observer and a
 * function that writes what is still counted (at shutdown).
 */
export function eventLogger(log: Logger, windowMs = 1000): { observe(e: AuditEvent): void; flush(): void } {
  const write = (e: Record<string, unknown>, summary: boolean) => {
    const line = lineOf(e as AuditEvent);
    if (!line) return;
    const message = summary ? `${line.message} (repeated)` : line.message;
    log[line.level](message, fields(e));
  };
  const refusals = new RefusalAggregator(windowMs, (summary) => write(summary, true));
  return {
    observe(e) {
      if (!lineOf(e)) return;
      if (refusals.absorb(e, new Date().toISOString())) return;
      write(e, false);
    },
    flush: () => refusals.closeAll(),
  };
}

/** An audit log whose events are also given to observers (metrics, the log), after they are written. */
export class ObservedAuditLog implements AuditLog {
  constructor(
    private readonly inner: AuditLog,
    private readonly observers: ReadonlyArray<(e: AuditEvent) => void>,
    private readonly onClose: () => void = () => {},
  ) {}

  emit(event: AuditEvent): void {
    this.inner.emit(event);
    for (const o of this.observers) o(event);
  }

  recent(limit: number, type?: string): Promise<AuditEvent[]> {
    return this.inner.recent(limit, type);
  }

  async close(): Promise<void> {
    this.onClose();
    await this.inner.close();
  }
}
