import type { AuditEvent, AuditFilter, AuditLog } from './audit.js';

/**
 * The only events a caller without any credential can cause: refused joins and challenges. They go
 * to a log of their own, rotated on its own, so that a flood of them from many addresses (which
 * the per-source limits bound per address only) can rotate away nothing but other refusals of its
 * kind: the record of what was issued, renewed, locked and changed stays (issue #9, finding 6).
 */
function anonymousRefusal(e: AuditEvent): boolean {
  return !e.success && (e.event === 'bot.join' || e.event === 'bot.challenge' || REFUSED_ISSUANCE.has(e.event));
}

/** Refused SVID issuance: a bot may repeat it at will, so it too must not rotate away the main log (#16, M3). */
const REFUSED_ISSUANCE = new Set(['workload_identity.x509', 'workload_identity.jwt']);

/** Two audit logs read as one: `main`, and `refusals` for the events anonymousRefusal picks. */
export class SplitAuditLog implements AuditLog {
  constructor(
    private readonly main: AuditLog,
    private readonly refusals: AuditLog,
  ) {}

  emit(event: AuditEvent): void {
    (anonymousRefusal(event) ? this.refusals : this.main).emit(event);
  }

  /** The newest `limit` events of both, newest first (ISO times sort as text). */
  async recent(limit: number, filter?: AuditFilter): Promise<AuditEvent[]> {
    const [a, b] = await Promise.all([this.main.recent(limit, filter), this.refusals.recent(limit, filter)]);
    const out: AuditEvent[] = [];
    let i = 0;
    let j = 0;
    while (out.length < limit && (i < a.length || j < b.length)) {
      const pickA = j >= b.length || (i < a.length && String(a[i]!.time) >= String(b[j]!.time));
      out.push(pickA ? a[i++]! : b[j++]!);
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([this.main.close(), this.refusals.close()]);
  }
}
