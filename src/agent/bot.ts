import { MwiError } from '../errors.js';
import { joinMethodInfo } from '../join/catalog.js';
import type { Logger } from '../util/log.js';
import type { TbotConfig } from './config.js';
import type { Destination, DestinationConfig } from './destinations/destination.js';
import { openDestination } from './destinations/index.js';
import { secretUri, type KubernetesSecretConfig } from './destinations/kubernetes-secret.js';
import { Metrics, startDiagnostics } from './diagnostics.js';
import { BotIdentity } from './bot-identity.js';
import { joinWithRetry } from './first-join.js';
import { entryOf } from './registry.js';
import type { Health } from './runtime.js';
import { retryPolicy, type BotDeps } from './service.js';
import { heartbeatService } from './services/heartbeat.js';
import { identityRenewalService } from './services/identity-renewal.js';
import { SERVICE_TYPES } from './services/index.js';

export interface BotHandle {
  /** Renews the identity and every output now (SIGHUP / SIGUSR1). */
  renewNow(): void;
  /** Resolves when the bot stops: after one pass for one-shot, or on abort / fatal error. */
  done: Promise<void>;
}

/** Where a message about tbot's storage points: its directory, or what memory storage means. */
function storageName(cfg: TbotConfig): string {
  const path = (cfg.storage as { path?: unknown }).path;
  if (cfg.storage.type === 'kubernetes_secret') return secretUri(cfg.storage as KubernetesSecretConfig);
  return typeof path === 'string' ? path : 'memory:// (memory storage keeps nothing across runs)';
}

/**
 * A first join needs the token; a restart with a usable identity in storage does not when the
 * token is a single-use secret (method `token`: the identity only renews from then on), so
 * tbot.yaml and the flags may leave it out. Methods whose token is a name join again later
 * (platform methods for every renewal, bound_keypair to rotate or recover), so they always need
 * it. This is where its absence is an error.
 */
function requireToken(cfg: TbotConfig, resumed: boolean, stored: boolean): void {
  if (cfg.token) return;
  if (resumed && joinMethodInfo(cfg.joinMethod)?.secretName) return;
  if (resumed) {
    throw new MwiError(
      'BAD_CONFIG',
      `required for join method "${cfg.joinMethod}" also when tbot resumes from its storage: the method joins ` +
        'again with it (platform methods for every renewal, bound_keypair to rotate or recover its key); ' +
        'its name is not a secret',
      { field: 'onboarding.token' },
    );
  }
  const where = storageName(cfg);
  const why = stored
    ? `the identity in storage ${where} cannot be resumed (see the log) and there is no onboarding.token: ` +
      'joining again needs a token'
    : `no identity in storage ${where} and no onboarding.token: a first join needs a token`;
  throw new MwiError(
    'BAD_CONFIG',
    `${why} (--token, onboarding.token or $TELEPORT_BOT_TOKEN: the token, or an absolute path to a file holding it)`,
  );
}

/**
 * tbot's runtime: takes its storage (one tbot per storage), checks every destination, loads or
 * joins the bot identity (a daemon retries a first join while the Auth Service is unreachable),
 * builds its services from one dependency bag (the identity renewal, one per output, the
 * heartbeat), then runs them until aborted or refused for good, or (one-shot) runs each once in
 * that order. A start that fails leaves nothing behind (lock, directories it made); a run that
 * joined and cannot keep its identity ends the instance it made.
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
    if (!dest) opened.set(d, (dest = openDestination(d, { log, signal, ...(field ? { field } : {}) })));
    return dest;
  };
  const storage = open(cfg.storage, 'storage.path');
  cfg.outputs.forEach((o, i) => o.destination && open(o.destination, `outputs[${i}].destination.path`));

  const botIdentity = new BotIdentity(cfg, storage, log);
  const metrics = new Metrics();
  // /readyz while the daemon joins; the services' own health once they exist
  const joining: Health = { status: 'initializing', reason: 'joining' };
  const health = new Map<string, Health>([['identity', joining]]);
  let lock: { release(): void } | undefined;
  let diag: Awaited<ReturnType<typeof startDiagnostics>> | undefined;
  /** Undoes what a start that stops before running made: nothing is left half-written. */
  const abandon = async (): Promise<void> => {
    botIdentity.close();
    await diag?.close();
    lock?.release();
    for (const d of opened.values()) d.discard?.();
  };
  // what an output can check only against the cluster (its name): before a first join spends a token
  const checkOutputs = async (clusterName: () => Promise<string>) => {
    for (const [i, o] of cfg.outputs.entries())
      await entryOf(SERVICE_TYPES, o.type).checkCluster?.(o, { where: `outputs[${i}]`, clusterName });
  };
  let resumed: boolean;
  try {
    // one storage, one tbot: taken before anything in it is read or written
    lock = storage.lock?.();
    for (const dest of opened.values()) await dest.prepare?.();
    if (cfg.diagAddr && !cfg.oneshot) {
      diag = await startDiagnostics(cfg.diagAddr, { services: health, metrics }, log);
      log.info('diagnostics listening', { addr: diag.address });
    }
    resumed = await botIdentity.load();
    requireToken(cfg, resumed, botIdentity.current !== undefined);
    if (resumed) {
      const name = botIdentity.current!.cluster_name;
      await checkOutputs(async () => name);
    } else {
      const join = () => botIdentity.join(false, checkOutputs);
      if (cfg.oneshot) await join();
      else if (!(await joinWithRetry(join, { retry: retryPolicy(cfg), log, signal, health: joining }))) {
        // stopped (SIGTERM) while waiting for the Auth Service
        await abandon();
        return { renewNow: () => {}, done: Promise.resolve() };
      }
    }
  } catch (err) {
    await abandon();
    throw err;
  }
  if (cfg.outputs.length === 0) log.warn('no outputs configured: tbot keeps its identity but writes no credentials');

  const deps: BotDeps = { cfg, log, botIdentity, metrics, openDestination: open, resumed, startedAt };
  const renewal = identityRenewalService(deps);
  const outputs = cfg.outputs.map((o, i) => entryOf(SERVICE_TYPES, o.type).build(o, deps, o.name ?? `output-${i}`));
  const services = [renewal, ...outputs, heartbeatService(deps)];
  health.clear();
  for (const s of services) health.set(s.name, s.health);

  /**
   * A run that joined failed before its outputs were written: directory storage keeps the
   * identity, and the next run continues the same instance without a new token; memory storage
   * cannot, so the instance is ended rather than left an orphan (the token is spent either way).
   */
  const afterFailure = async (what: string): Promise<void> => {
    if (resumed) return;
    const instance = botIdentity.current?.instance_id;
    if (cfg.storage.type !== 'memory') {
      log.warn(
        `${what}; the identity is kept in storage: run tbot again (no new token needed) to continue this instance`,
        {
          storage: storageName(cfg),
          instance,
        },
      );
    } else await botIdentity.end(`${what}, and memory storage cannot keep the identity for another run`);
  };

  if (cfg.oneshot) {
    try {
      for (const s of services) await s.oneShot?.();
    } catch (err) {
      await afterFailure(`the run failed after the join (${err instanceof Error ? err.message : String(err)})`);
      throw err;
    } finally {
      botIdentity.close();
      lock?.release();
    }
    return { renewNow: () => {}, done: Promise.resolve() };
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
    // a refused bot cannot end its instance: only a stop before every output was written can
    if (!refusal && outputs.some((o) => o.health.lastSuccess === undefined))
      await afterFailure('tbot stopped before every output was written');
    botIdentity.close();
    await diag?.close();
    lock?.release();
    if (refusal) throw refusal;
  });
  return { renewNow: () => renewal.trigger(), done };
}
