import cluster, { type Worker } from 'node:cluster';
import { parseAddr } from '../api/client.js';
import { listenDiagnostics, type DiagAnswer, type DiagListener } from '../util/diag-server.js';
import type { Logger } from '../util/log.js';
import { mergeSnapshots, renderPrometheus, type MetricsSnapshot } from '../util/metrics.js';
import type { AuthMetrics } from './metrics.js';
import type { Readiness } from './readiness.js';
import type { AuthServer } from './server.js';

// `mwi start --diag-addr HOST:PORT` (Teleport's flag): /livez, /readyz, /metrics.
//
// With --workers N, each worker counts its own requests. The primary process serves the listener
// and, for each request, asks every worker over the cluster IPC channel for its readiness and a
// snapshot of its metrics, then answers with their merge (counters and histograms summed, gauges
// by their own rule: see GaugeMerge). One scrape therefore sees the whole service, as with one
// process. A worker that does not answer within WORKER_ANSWER_MS makes /readyz 503 and leaves its
// counts out of that scrape; a restarted worker starts from zero, which Prometheus's rate() reads
// as a counter reset.

/** What a diagnostics listener reports from. */
export interface DiagSource {
  readiness(): Promise<Readiness>;
  metrics(): Promise<MetricsSnapshot>;
}

/** Primary to worker, and the worker's answer. */
interface DiagAsk {
  type: 'diag';
  id: number;
}
interface DiagReply {
  type: 'diag';
  id: number;
  readiness: Readiness;
  metrics: MetricsSnapshot;
}

const WORKER_ANSWER_MS = 2000;

function readyAnswer(r: Readiness, extra: Record<string, unknown> = {}): DiagAnswer {
  return { status: r.ready ? 200 : 503, body: { status: r.ready ? 'ready' : 'not ready', checks: r.checks, ...extra } };
}

/** Serves `source` on `addr`; `--diag-addr` is the field named when it cannot be bound. */
export function serveDiagnostics(addr: string, source: DiagSource, log: Logger): Promise<DiagListener> {
  return listenDiagnostics(
    { ...parseAddr(addr), given: addr },
    {
      async readyz(rest) {
        if (rest) return { status: 404, body: { error: 'not found: the Auth Service has no per-service /readyz' } };
        return readyAnswer(await source.readiness());
      },
      metrics: async () => renderPrometheus(await source.metrics()),
    },
    log,
    {},
    '--diag-addr',
  );
}

/**
 * The source of a single-process Auth Service: not ready ("starting") until `server()` returns
 * the started server; metrics from `metrics` (counters exist at zero from the start).
 */
export function processSource(metrics: AuthMetrics, server: () => AuthServer | undefined): DiagSource {
  return {
    async readiness() {
      const s = server();
      if (!s)
        return { ready: false, checks: { start: { ok: false, reason: 'starting: storage and CAs not loaded yet' } } };
      return s.readiness();
    },
    async metrics() {
      await server()?.refreshMetrics();
      return metrics.registry.snapshot();
    },
  };
}

/** In a worker: answers the primary's diagnostics requests from this process's source. */
export function answerDiagRequests(source: DiagSource): void {
  process.on('message', (m: DiagAsk) => {
    if (m?.type !== 'diag') return;
    void Promise.all([source.readiness(), source.metrics()]).then(([readiness, metrics]) =>
      process.send?.({ type: 'diag', id: m.id, readiness, metrics } satisfies DiagReply),
    );
  });
}

let nextAsk = 0;

/** Asks every live worker; resolves with the answers that came within WORKER_ANSWER_MS. */
function askWorkers(): Promise<Array<{ worker: Worker; reply: DiagReply | undefined }>> {
  const id = ++nextAsk;
  const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w && !w.isDead());
  return Promise.all(
    workers.map(
      (worker) =>
        new Promise<{ worker: Worker; reply: DiagReply | undefined }>((resolve) => {
          const done = (reply: DiagReply | undefined) => {
            clearTimeout(timer);
            worker.off('message', onMessage);
            resolve({ worker, reply });
          };
          const onMessage = (m: DiagReply) => {
            if (m?.type === 'diag' && m.id === id) done(m);
          };
          const timer = setTimeout(() => done(undefined), WORKER_ANSWER_MS);
          worker.on('message', onMessage);
          try {
            worker.send({ type: 'diag', id } satisfies DiagAsk);
          } catch {
            done(undefined);
          }
        }),
    ),
  );
}

/**
 * The source of the primary of `--workers N`: ready when N workers run and each is ready; the
 * metrics of every worker that answered, merged.
 */
export function workersSource(expected: number): DiagSource {
  return {
    async readiness() {
      const answers = await askWorkers();
      const checks: Readiness['checks'] = {};
      const running = answers.length;
      checks.workers =
        running === expected
          ? { ok: true }
          : { ok: false, reason: `${running} of ${expected} workers running (a worker is being restarted)` };
      for (const { worker, reply } of answers) {
        const name = `worker ${worker.process.pid ?? worker.id}`;
        if (!reply) checks[name] = { ok: false, reason: `no answer within ${WORKER_ANSWER_MS} ms` };
        else if (!reply.readiness.ready)
          checks[name] = {
            ok: false,
            reason: Object.entries(reply.readiness.checks)
              .filter(([, c]) => !c.ok)
              .map(([k, c]) => `${k}: ${c.reason ?? 'failed'}`)
              .join('; '),
          };
        else checks[name] = { ok: true };
      }
      return { ready: Object.values(checks).every((c) => c.ok), checks };
    },
    async metrics() {
      const answers = await askWorkers();
      return mergeSnapshots(answers.flatMap(({ reply }) => (reply ? [reply.metrics] : [])));
    },
  };
}
