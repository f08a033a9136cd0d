import type { z } from 'zod';
import { isMwiError, type MwiError } from '../errors.js';
import type { Logger } from '../util/log.js';
import type { BotIdentity } from './bot-identity.js';
import type { TbotConfig } from './config.js';
import type { Destination, DestinationConfig } from './destinations/destination.js';
import type { Metrics } from './diagnostics.js';
import type { Lifetime } from './lifetime.js';
import type { ConfigOf, Typed } from './registry.js';
import { IntervalRunner, type Health, type RetryPolicy } from './runtime.js';

/**
 * One part of tbot's runtime (Teleport's bot.Service): the identity renewal, each output, the
 * heartbeat. Built from the dependency bag; a daemon runs every service until it stops, a
 * one-shot run calls each `oneShot` once, in order.
 */
export interface Service {
  /** Its name on /readyz/<name> and in tbot_service_healthy{service}. */
  readonly name: string;
  readonly health: Health;
  /** Runs until `signal` aborts. Rejects only when tbot must stop: the Auth Service refused it for good. */
  run(signal: AbortSignal): Promise<void>;
  /** One pass for --oneshot; errors end the run. */
  oneShot?(): Promise<void>;
  /** Runs now instead of when due (SIGHUP, or a renewal it follows). */
  trigger(): void;
}

/** What every service is built from (Teleport's bot.ServiceDependencies). */
export interface BotDeps {
  readonly cfg: TbotConfig;
  readonly log: Logger;
  readonly botIdentity: BotIdentity;
  readonly metrics: Metrics;
  /** Opens a destination of tbot.yaml (the one instance tbot checked at start). */
  openDestination(cfg: DestinationConfig): Destination;
  /** The credential came from storage, not from a join in this run. */
  readonly resumed: boolean;
  /** When tbot started (ms since the epoch). */
  readonly startedAt: number;
}

/** A validated item of the `outputs:` or `services:` list, as the bot keeps it. */
export interface ServiceConfig {
  readonly type: string;
  /** Its name on /readyz; default `output-<position>`. */
  readonly name?: string | undefined;
  /** Where it writes files, for a service that does (an output). */
  readonly destination?: DestinationConfig;
}

/** What an item is checked against: where it sits in tbot.yaml, and the bot's own lifetime. */
export interface ResolveContext {
  /** `outputs[2]`: errors name fields under it. */
  where: string;
  bot: Lifetime;
  /** A one-shot run: renewal intervals are never used, so they are not checked against TTLs. */
  oneshot?: boolean;
}

/** An output or service type: its `type:`, its fields, the checks past its schema, and its builder. */
export interface ServiceType<
  F extends z.ZodRawShape = z.ZodRawShape,
  C extends ServiceConfig = ServiceConfig,
> extends Typed<F> {
  resolve(raw: ConfigOf<F>, ctx: ResolveContext): C;
  /**
   * Checks against the cluster, run before a first join sends anything that could spend the token
   * (or on resuming), before any service runs; errors name fields under `where`. `clusterName`
   * asks the Auth Service only when called: a check with nothing to compare costs no request.
   */
  checkCluster?(cfg: C, ctx: { where: string; clusterName: () => Promise<string> }): Promise<void>;
  /** The service for one item; `name` is its name on /readyz. */
  build(cfg: C, deps: BotDeps, name: string): Service;
}

/** Errors after which retrying cannot help: the bot identity is refused for good. */
function refusedForGood(err: unknown): err is MwiError {
  return isMwiError(err, 'LOCKED') || isMwiError(err, 'RENEW_DENIED') || isMwiError(err, 'ACCESS_DENIED');
}

/** Retry often enough to renew several times before the credential expires, at most once a minute. */
export function retryPolicy(cfg: TbotConfig): RetryPolicy {
  return { initialMs: 1000, maxMs: Math.min(60_000, Math.max(1000, cfg.credentialTtlMs / 4)) };
}

/** A periodic job and how it runs. */
export interface LoopSpec {
  /** How log lines name the job ("identity renewal", "output NAME"). */
  label: string;
  intervalMs: number;
  /** Default: from the credential TTL (retryPolicy). */
  retry?: RetryPolicy;
  /** Run at start (the default) or after one interval. */
  runFirst?: boolean;
  /** Healthy before its first run (see IntervalOptions.healthyAtStart). */
  healthyAtStart?: boolean;
  /** Metrics counting runs that succeeded and failed; a counted success also refreshes the expiry gauge. */
  counters?: { ok: string; failed: string };
  /** A refusal does not stop tbot (the heartbeat: the identity renewal acts on refusals). */
  bestEffort?: boolean;
  /** Also run after each renewal of the bot identity (an output wants the new credential). */
  afterRenewal?: boolean;
  /** One run; what it returns are warnings, shown on /readyz until a run returns none. */
  job(): Promise<string[] | void>;
  /** The --oneshot pass; default: the job once. */
  oneShot?(): Promise<void>;
}

/**
 * The one implementation of the Service contract for periodic jobs: runs the job on its interval
 * with retries (IntervalRunner), reports health, counts runs, and stops tbot when the Auth
 * Service refuses the bot identity for good.
 */
export class LoopService implements Service {
  private readonly runner: IntervalRunner;
  private readonly stop = new AbortController();
  private refusal: MwiError | undefined;

  constructor(
    readonly name: string,
    private readonly deps: BotDeps,
    private readonly spec: LoopSpec,
  ) {
    this.runner = new IntervalRunner(() => this.once(), {
      name: spec.label,
      intervalMs: spec.intervalMs,
      retry: spec.retry ?? retryPolicy(deps.cfg),
      log: deps.log,
      runFirst: spec.runFirst,
      healthyAtStart: spec.healthyAtStart,
    });
    if (spec.afterRenewal) deps.botIdentity.onRenewed(() => this.trigger());
  }

  get health(): Health {
    return this.runner.health;
  }

  trigger(): void {
    this.runner.trigger();
  }

  async run(signal: AbortSignal): Promise<void> {
    await this.runner.run(AbortSignal.any([signal, this.stop.signal]));
    if (this.refusal) throw this.refusal;
  }

  async oneShot(): Promise<void> {
    if (this.spec.oneShot) await this.spec.oneShot();
    else await this.spec.job();
  }

  private async once(): Promise<void> {
    const { metrics, botIdentity, log } = this.deps;
    const { counters } = this.spec;
    try {
      const warnings = await this.spec.job();
      this.runner.health.warnings = warnings && warnings.length > 0 ? warnings : undefined;
    } catch (err) {
      if (counters) metrics.inc(counters.failed);
      if (!this.spec.bestEffort && refusedForGood(err)) {
        this.refusal = err;
        const error = err instanceof Error ? err.message : String(err);
        log.error(`${this.spec.label}: refused by the Auth Service; stopping`, { error });
        // stops the runner before it sees the error: a refusal is not retried
        this.stop.abort();
      }
      throw err;
    }
    if (!counters) return;
    metrics.inc(counters.ok);
    const expires = botIdentity.current?.expires;
    if (expires) metrics.set('tbot_identity_expiry_timestamp_seconds', Math.floor(Date.parse(expires) / 1000));
  }
}
