import { parseAddr } from '../api/client.js';
import { listenDiagnostics, type DiagAnswer, type DiagListener } from '../util/diag-server.js';
import type { HttpLimits } from '../util/http-limits.js';
import type { Logger } from '../util/log.js';
import type { Health } from './runtime.js';

/**
 * tbot's counters: on /metrics from the start, at 0 until counted, so that a scrape before the
 * first event (or a rate() over a fresh process) sees them rather than no series at all.
 */
export const COUNTERS = [
  'tbot_renewals_total',
  'tbot_renewal_failures_total',
  'tbot_output_writes_total',
  'tbot_output_failures_total',
] as const;

/** Counters and gauges tbot exposes on /metrics. */
export class Metrics {
  readonly counters = new Map<string, number>();
  gauges = new Map<string, number>();

  inc(name: string, by = 1): void {
    this.counters.set(name, (this.counters.get(name) ?? 0) + by);
  }

  set(name: string, value: number): void {
    this.gauges.set(name, value);
  }
}

export interface DiagSources {
  services: ReadonlyMap<string, Health>;
  metrics: Metrics;
}

const HELP: Record<string, string> = {
  tbot_renewals_total: 'Renewals of the internal identity that succeeded.',
  tbot_renewal_failures_total: 'Renewal attempts that failed (retried with backoff).',
  tbot_output_writes_total: 'Output file sets written.',
  tbot_output_failures_total: 'Output generations that failed.',
  tbot_identity_expiry_timestamp_seconds: 'When the internal identity expires (unix seconds).',
};

function prometheus(src: DiagSources): string {
  const lines: string[] = [];
  const counters = new Map<string, number>([...COUNTERS.map((c): [string, number] => [c, 0]), ...src.metrics.counters]);
  for (const [name, v] of counters)
    lines.push(`# HELP ${name} ${HELP[name] ?? name}`, `# TYPE ${name} counter`, `${name} ${v}`);
  for (const [name, v] of src.metrics.gauges)
    lines.push(`# HELP ${name} ${HELP[name] ?? name}`, `# TYPE ${name} gauge`, `${name} ${v}`);
  lines.push(
    '# HELP tbot_service_healthy 1 if the service last ran successfully.',
    '# TYPE tbot_service_healthy gauge',
  );
  for (const [name, h] of src.services)
    lines.push(`tbot_service_healthy{service="${name.replace(/["\\\n]/g, '_')}"} ${h.status === 'healthy' ? 1 : 0}`);
  return `${lines.join('\n')}\n`;
}

/** `/readyz` and `/readyz/<service>`: ready when every service's last run succeeded. */
function readiness(src: DiagSources, only: string): DiagAnswer {
  const entries = [...src.services].filter(([n]) => !only || n === only);
  if (only && entries.length === 0) return { status: 404, body: { error: `no service ${only}` } };
  const services = Object.fromEntries(
    entries.map(([n, h]) => [
      n,
      {
        status: h.status,
        ...(h.reason ? { reason: h.reason } : {}),
        ...(h.warnings ? { warnings: h.warnings } : {}),
      },
    ]),
  );
  const ready = entries.every(([, h]) => h.status === 'healthy');
  // warnings do not change readiness: what they describe works, but not as the operator may think
  const warnings = entries.flatMap(([n, h]) => (h.warnings ?? []).map((w) => `${n}: ${w}`));
  const body = { status: ready ? 'ready' : 'not ready', services, ...(warnings.length ? { warnings } : {}) };
  return { status: ready ? 200 : 503, body };
}

/**
 * `--diag-addr`: /livez (the process runs), /readyz and /readyz/<service> (every service's last
 * run succeeded), /metrics (Prometheus text), on the listener the Auth Service's --diag-addr
 * uses too. Loopback unless configured otherwise; nothing secret.
 */
export function startDiagnostics(
  addr: string,
  src: DiagSources,
  log: Logger,
  httpLimits: Partial<HttpLimits> = {},
): Promise<DiagListener> {
  const endpoints = { metrics: () => prometheus(src), readyz: (only: string) => readiness(src, only) };
  return listenDiagnostics({ ...parseAddr(addr), given: addr }, endpoints, log, httpLimits);
}
