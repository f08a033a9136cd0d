import { hostname, platform, release } from 'node:os';
import { PATHS, type HeartbeatRequest } from '../api/wire.js';
import { isMwiError } from '../errors.js';
import type { Logger } from '../util/log.js';
import { VERSION } from '../version.js';
import type { DestinationConfig, TbotConfig } from './config.js';
import type { Destination } from './destinations/destination.js';
import { DirectoryDestination } from './destinations/directory.js';
import { MemoryDestination } from './destinations/memory.js';
import { BotIdentity } from './identity.js';
import { IdentityOutput } from './outputs/identity.js';
import { IntervalRunner, type Health } from './runtime.js';
import { Metrics, startDiagnostics } from './diagnostics.js';

export const HEARTBEAT_INTERVAL_MS = 30 * 60 * 1000;

export function openDestination(d: DestinationConfig): Destination {
  return d.type === 'directory' ? new DirectoryDestination(d.path) : new MemoryDestination();
}

/** Errors after which retrying cannot help: the identity is refused for good. */
function fatal(err: unknown): boolean {
  return isMwiError(err, 'LOCKED') || isMwiError(err, 'RENEW_DENIED') || isMwiError(err, 'ACCESS_DENIED');
}

export interface BotHandle {
  /** Renews the identity and every output now (SIGHUP / SIGUSR1). */
  renewNow(): void;
  /** Resolves when the bot stops: after one pass for one-shot, or on abort / fatal error. */
  done: Promise<void>;
}

/**
 * tbot's runtime: an identity service, one service per output and a heartbeat, each on its own
 * interval. One-shot mode runs each once and returns.
 */
export async function startBot(cfg: TbotConfig, log: Logger, signal: AbortSignal): Promise<BotHandle> {
  const startedAt = Date.now();
  const identity = new BotIdentity(cfg, openDestination(cfg.storage), log);
  const outputs = cfg.outputs.map((o) => new IdentityOutput(o, openDestination(o.destination), identity, log));
  if (outputs.length === 0) log.warn('no outputs configured: tbot keeps its identity but writes no credentials');

  const heartbeat = async (): Promise<void> => {
    const hb: HeartbeatRequest = {
      hostname: hostname(),
      os: `${platform()} ${release()}`,
      version: VERSION,
      uptime_seconds: Math.round((Date.now() - startedAt) / 1000),
      one_shot: cfg.oneshot,
    };
    await identity.call(PATHS.heartbeat, hb);
  };

  const resumed = await identity.load();
  if (!resumed) await identity.join();

  if (cfg.oneshot) {
    if (resumed) await identity.renew();
    for (const o of outputs) await o.generate();
    await heartbeat().catch((err) => log.warn('heartbeat failed', { error: String(err) }));
    identity.close();
    return { renewNow: () => {}, done: Promise.resolve() };
  }

  const stop = new AbortController();
  let fatalError: unknown;
  const metrics = new Metrics();
  const guard = (name: string, fn: () => Promise<void>, ok: string, failed: string) => async () => {
    try {
      await fn();
      metrics.inc(ok);
      const exp = identity.identity?.expires;
      if (exp) metrics.set('tbot_identity_expiry_timestamp_seconds', Math.floor(Date.parse(exp) / 1000));
    } catch (err) {
      metrics.inc(failed);
      if (fatal(err)) {
        fatalError = err;
        log.error(`${name}: refused by the Auth Service; stopping`, { error: err instanceof Error ? err.message : String(err) });
        stop.abort();
      }
      throw err;
    }
  };
  const both = AbortSignal.any([signal, stop.signal]);
  // retry often enough to renew several times before the credential expires, at most once a minute
  const retry = { initialMs: 1000, maxMs: Math.min(60_000, Math.max(1000, cfg.credentialTtlMs / 4)) };
  const idRunner = new IntervalRunner(guard('identity renewal', () => identity.renew(), 'tbot_renewals_total', 'tbot_renewal_failures_total'), {
    name: 'identity renewal',
    intervalMs: cfg.renewalIntervalMs,
    retry,
    log,
    signal: both,
    // a resumed daemon renews at once; a fresh join just got a new identity
    runFirst: resumed,
  });
  // an output without its own renewal_interval renews with the identity (one timer, not two
  // drifting ones); one with its own interval also runs on that
  const outRunners = outputs.map(
    (o) =>
      new IntervalRunner(guard(`output ${o.name}`, () => o.generate(), 'tbot_output_writes_total', 'tbot_output_failures_total'), {
        name: `output ${o.name}`,
        intervalMs: o.cfg.renewal_interval ? o.cfg.renewalIntervalMs : cfg.renewalIntervalMs * 2,
        retry,
        log,
        signal: both,
        // a resumed daemon's identity renewal triggers the first write
        runFirst: !resumed,
      }),
  );
  identity.onRenewed(() => outRunners.forEach((r) => r.trigger()));
  const hbRunner = new IntervalRunner(heartbeat, { name: 'heartbeat', intervalMs: HEARTBEAT_INTERVAL_MS, retry: { initialMs: 5000, maxMs: 300_000 }, log, signal: both });

  let diag: Awaited<ReturnType<typeof startDiagnostics>> | undefined;
  if (cfg.diagAddr) {
    const services = new Map<string, Health>([
      ['identity', idRunner.health],
      ...outputs.map((o, i) => [o.cfg.name ?? `output-${i}`, outRunners[i]!.health] as [string, Health]),
      ['heartbeat', hbRunner.health],
    ]);
    diag = await startDiagnostics(cfg.diagAddr, { services, metrics }, log);
    log.info('diagnostics listening', { addr: diag.address });
  }

  const done = Promise.all([idRunner.run(), ...outRunners.map((r) => r.run()), hbRunner.run()]).then(async () => {
    identity.close();
    await diag?.close();
    if (fatalError) throw fatalError;
  });
  return { renewNow: () => idRunner.trigger(), done };
}
