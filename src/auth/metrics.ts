import { performance } from 'node:perf_hooks';
import { ERROR_CODES, HTTP_STATUS, type ErrorCode } from '../errors.js';
import type { Backend } from '../storage/backend.js';
import {
  MetricsRegistry,
  REQUEST_BUCKETS,
  STORAGE_BUCKETS,
  type Counter,
  type Gauge,
  type Histogram,
} from '../util/metrics.js';
import type { AuditEvent } from './audit.js';
import type { Authorities } from './authorities.js';

/** The route label of a request that matched no route (refused before, or unknown path). */
export const NO_ROUTE = 'none';
/** The refusal reason of a connection closed over connection_limits.max_connections. */
export const CONNECTION_LIMIT = 'connection_limit';
/** The method label when the join method is not one this Auth Service serves, or not known. */
export const UNKNOWN_METHOD = 'unknown';

/** Refusal reasons: the public error codes a request can be refused with (4xx), lowercase. */
const REFUSAL_CODES = (Object.keys(ERROR_CODES) as ErrorCode[]).filter(
  (c) => HTTP_STATUS[c] >= 400 && HTTP_STATUS[c] < 500,
);

/** Kinds of certificates counted by mwi_certificates_issued_total. */
export const ISSUED_KINDS = ['bot_identity', 'output_tls', 'output_ssh', 'ssh_host', 'operator'] as const;

const STORAGE_OPS = ['get', 'put', 'create', 'compareAndSwap', 'delete', 'transact', 'range', 'purgeExpired'] as const;
type StorageOp = (typeof STORAGE_OPS)[number];

/** How long a count of bot instances is reused: a flood of scrapes reads storage once a second at most. */
const INSTANCE_COUNT_MS = 1000;

/**
 * The Auth Service's metrics (one process's: with --workers, see diag.ts for how they are summed).
 * Joins, renewals, challenges and issued certificates are counted from the audit events that
 * record them (observeEvent), so a metric and the audit log cannot disagree; requests and
 * refusals at the HTTP layer (server.ts); storage operations by a timing wrapper (timeBackend).
 * Every series a label set is known for exists from the start, at zero.
 */
export class AuthMetrics {
  readonly registry = new MetricsRegistry();
  private readonly joins: Counter;
  private readonly challenges: Counter;
  private readonly renewals: Counter;
  private readonly refusals: Counter;
  private readonly issued: Counter;
  private readonly requests: Histogram;
  private readonly storage: Histogram;
  private readonly instances: Gauge;
  private readonly caExpiry: Gauge;
  private methods: ReadonlySet<string> = new Set();
  private counted: { at: number; count: number } | undefined;

  constructor() {
    const r = this.registry;
    this.joins = r.counter('mwi_joins_total', 'Joins (first and refresh joins), by join method and result.', [
      'method',
      'result',
    ]);
    this.challenges = r.counter(
      'mwi_join_challenges_total',
      'Join challenges refused (a challenge handed out is not audited, so not counted), by join method.',
      ['method', 'result'],
    );
    this.renewals = r.counter(
      'mwi_renewals_total',
      'Renewals of bot identities, by the join method of the instance (unknown for a refusal before the ' +
        'instance was read) and result.',
      ['method', 'result'],
    );
    this.refusals = r.counter(
      'mwi_refusals_total',
      'Requests refused (4xx), by reason class: the error code, lowercase; connection_limit for a connection ' +
        'closed over connection_limits.max_connections.',
      ['reason'],
    );
    this.issued = r.counter(
      'mwi_certificates_issued_total',
      'Certificates issued to callers: bot_identity (joins, renewals), output_tls and output_ssh (outputs), ' +
        'ssh_host (tctl auth sign --host), operator (tctl auth sign --admin).',
      ['kind'],
    );
    this.requests = r.histogram(
      'mwi_request_duration_seconds',
      'Time from a request to its answer, by route ("METHOD /path" of the route table; none when no route matched).',
      ['route'],
      REQUEST_BUCKETS,
    );
    this.storage = r.histogram(
      'mwi_storage_operation_duration_seconds',
      'Time a storage operation took, by operation.',
      ['operation'],
      STORAGE_BUCKETS,
    );
    this.instances = r.gauge('mwi_bot_instances', 'Bot instances in storage that have not expired.', [], 'max');
    this.caExpiry = r.gauge(
      'mwi_ca_expiry_seconds',
      'Seconds until each TLS CA certificate expires (negative once expired).',
      ['ca'],
      'min',
    );
    for (const reason of [...REFUSAL_CODES.map((c) => c.toLowerCase()), CONNECTION_LIMIT])
      this.refusals.zero({ reason });
    for (const kind of ISSUED_KINDS) this.issued.zero({ kind });
    for (const operation of STORAGE_OPS) this.storage.zero({ operation });
    this.requests.zero({ route: NO_ROUTE });
  }

  /** Makes the series of the served join methods and routes exist at zero. */
  init(methods: ReadonlyMap<string, { challenge?: unknown }>, routes: Iterable<string>): void {
    this.methods = new Set(methods.keys());
    for (const method of [...this.methods, UNKNOWN_METHOD]) {
      for (const result of ['success', 'failure']) {
        this.joins.zero({ method, result });
        this.renewals.zero({ method, result });
      }
      if (methods.get(method)?.challenge || method === UNKNOWN_METHOD)
        this.challenges.zero({ method, result: 'failure' });
    }
    for (const route of routes) this.requests.zero({ route });
  }

  /** A method label from a caller's input: only a served method names a series (bounded). */
  private method(m: unknown): string {
    return typeof m === 'string' && this.methods.has(m) ? m : UNKNOWN_METHOD;
  }

  /** Counts what an audit event records (see the class comment). */
  observeEvent(e: AuditEvent): void {
    const result = e.success ? 'success' : 'failure';
    switch (e.event) {
      case 'bot.join':
        this.joins.inc({ method: this.method(e.join_method), result });
        if (e.success) this.issued.inc({ kind: 'bot_identity' });
        // a new instance: the next scrape counts again rather than show a count from before it
        if (e.success) this.counted = undefined;
        return;
      case 'bot.challenge':
        this.challenges.inc({ method: this.method(e.join_method), result });
        return;
      case 'bot.renew':
        this.renewals.inc({ method: this.method(e.join_method), result });
        if (e.success) this.issued.inc({ kind: 'bot_identity' });
        return;
      case 'bot.certs':
        if (!e.success) return;
        if (e.tls_serial !== undefined) this.issued.inc({ kind: 'output_tls' });
        if (e.ssh_serial !== undefined) this.issued.inc({ kind: 'output_ssh' });
        return;
      case 'resource.created':
        if (e.resource?.startsWith('host_cert/')) this.issued.inc({ kind: 'ssh_host' });
        if (e.resource?.startsWith('operator_identity/')) this.issued.inc({ kind: 'operator' });
        return;
      default:
        return;
    }
  }

  /** A request answered after `seconds`; `route` from the route table (NO_ROUTE if none matched). */
  request(route: string, seconds: number): void {
    this.requests.observe(seconds, { route });
  }

  /** A request refused with `code` (4xx), or a connection over the limit. */
  refused(reason: ErrorCode | typeof CONNECTION_LIMIT): void {
    this.refusals.inc({ reason: reason.toLowerCase() });
  }

  /** `backend`, with each operation's time recorded (the storage latency histogram). */
  timeBackend(backend: Backend): Backend {
    const time = <T>(operation: StorageOp, p: () => Promise<T>): Promise<T> => {
      const start = performance.now();
      const done = () => this.storage.observe((performance.now() - start) / 1000, { operation });
      return p().finally(done);
    };
    return {
      get: (k) => time('get', () => backend.get(k)),
      put: (k, v, o) => time('put', () => backend.put(k, v, o)),
      create: (k, v, o) => time('create', () => backend.create(k, v, o)),
      compareAndSwap: (k, r, v, o) => time('compareAndSwap', () => backend.compareAndSwap(k, r, v, o)),
      delete: (k, r) => time('delete', () => backend.delete(k, r)),
      transact: (ops) => time('transact', () => backend.transact(ops)),
      range: (p, o) => time('range', () => backend.range(p, o)),
      watch: (p, fn) => backend.watch(p, fn),
      purgeExpired: (s) => time('purgeExpired', () => backend.purgeExpired(s)),
      close: () => backend.close(),
    };
  }

  /**
   * Refreshes the gauges read from state, before a scrape: the CAs' remaining validity, and the
   * number of bot instances (counted in storage in pages of 1000, at most once a second).
   */
  async refresh(cas: Authorities, backend: Backend, now: number): Promise<void> {
    for (const [ca, loaded] of [
      ['tls-host', cas.tlsHost],
      ['tls-user', cas.tlsUser],
    ] as const) {
      this.caExpiry.set(Math.floor((Date.parse(loaded.cert.validTo) - now) / 1000), { ca });
    }
    if (!this.counted || now - this.counted.at >= INSTANCE_COUNT_MS || now < this.counted.at) {
      this.counted = { at: now, count: await countInstances(backend) };
    }
    this.instances.set(this.counted.count);
  }
}

/** Unexpired bot instances in storage that were not ended (kept as evidence: see end-instance.ts), read in pages. */
async function countInstances(backend: Backend): Promise<number> {
  let n = 0;
  let startAfter: string | undefined;
  for (;;) {
    const page = await backend.range('/bot_instances/', { limit: 1000, ...(startAfter ? { startAfter } : {}) });
    // an ended one names itself in its status: a text test spares parsing every instance (a quote inside a
    // self-reported string is escaped in the JSON, so no reported value can forge it)
    n += page.filter((row) => !row.value.includes('"ended":{')).length;
    if (page.length < 1000) return n;
    startAfter = page[page.length - 1]!.key;
  }
}
