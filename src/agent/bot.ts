import type { Logger } from '../util/log.js';
import type { TbotConfig } from './config.js';
import type { Destination, DestinationConfig } from './destinations/destination.js';
import { openDestination } from './destinations/index.js';
import { Metrics, startDiagnostics } from './diagnostics.js';
import { BotIdentity } from './bot-identity.js';
import { entryOf } from './registry.js';
import type { BotDeps } from './service.js';
import { heartbeatService } from './services/heartbeat.js';
import { identityRenewalService } from './services/identity-renewal.js';
import { SERVICE_TYPES } from './services/index.js';

export interface BotHandle {
  /** Renews the identity and every output now (SIGHUP / SIGUSR1). */
  renewNow(): void;
  /** Resolves when the bot stops: after one pass for one-shot, or on abort / fatal error. */
  done: Promise<void>;
}

/**
 * tbot's runtime: loads or joins the bot identity, builds its services from one dependency bag
 * (the identity renewal, one per output, the heartbeat), then runs them until aborted or refused
 * for good, or (one-shot) runs each once in that order.
 */
export async function startBot(cfg: TbotConfig, log: Logger, signal: AbortSignal): Promise<BotHandle> {
  const startedAt = Date.now();
  for (const w of cfg.warnings) log.warn(w);
  if (cfg.storage.type === 'memory' && !cfg.oneshot)
    log.warn('memory storage: the identity is lost when tbot stops, and a single-use token cannot join again');
  // one instance per destination of tbot.yaml, opened and checked before the join: a run that
  // cannot write (a refused link, ACLs that acls: required cannot set) spends no single-use token
  const opened = new Map<DestinationConfig, Destination>();
  const open = (d: DestinationConfig, field?: string): Destination => {
    let dest = opened.get(d);
    if (!dest) opened.set(d, (dest = openDestination(d, { log, ...(field ? { field } : {}) })));
    return dest;
  };
  const storage = open(cfg.storage, 'storage.path');
  cfg.outputs.forEach((o, i) => o.destination && open(o.destination, `outputs[${i}].destination.path`));
  for (const dest of opened.values()) await dest.prepare?.();

  const botIdentity = new BotIdentity(cfg, storage, log);
  if (cfg.outputs.length === 0) log.warn('no outputs configured: tbot keeps its identity but writes no credentials');
  // what an output can check only against the cluster (its name): before a first join spends a token
  const checkOutputs = async (clusterName: () => Promise<string>) => {
    for (const [i, o] of cfg.outputs.entries())
      await entryOf(SERVICE_TYPES, o.type).checkCluster?.(o, { where: `outputs[${i}]`, clusterName });
  };
  const resumed = await botIdentity.load();
  try {
    if (resumed) {
      const name = botIdentity.current!.cluster_name;
      await checkOutputs(async () => name);
    } else await botIdentity.join(false, checkOutputs);
  } catch (err) {
    botIdentity.close();
    throw err;
  }

  const deps: BotDeps = { cfg, log, botIdentity, metrics: new Metrics(), openDestination: open, resumed, startedAt };
  const renewal = identityRenewalService(deps);
  const services = [
    renewal,
    ...cfg.outputs.map((o, i) => entryOf(SERVICE_TYPES, o.type).build(o, deps, o.name ?? `output-${i}`)),
    heartbeatService(deps),
  ];

  if (cfg.oneshot) {
    for (const s of services) await s.oneShot?.();
    botIdentity.close();
    return { renewNow: () => {}, done: Promise.resolve() };
  }

  let diag: Awaited<ReturnType<typeof startDiagnostics>> | undefined;
  if (cfg.diagAddr) {
    const health = new Map(services.map((s) => [s.name, s.health]));
    diag = await startDiagnostics(cfg.diagAddr, { services: health, metrics: deps.metrics }, log);
    log.info('diagnostics listening', { addr: diag.address });
  }

  const stop = new AbortController();
  const both = AbortSignal.any([signal, stop.signal]);
  let refusal: Error | undefined;
  // a service that rejects was refused for good: the others stop too, and `done` rethrows it
  const runs = services.map((s) =>
    s.run(both).catch((err: unknown) => {
      refusal = err instanceof Error ? err : new Error(String(err));
      stop.abort();
    }),
  );
  const done = Promise.all(runs).then(async () => {
    botIdentity.close();
    await diag?.close();
    if (refusal) throw refusal;
  });
  return { renewNow: () => renewal.trigger(), done };
}
