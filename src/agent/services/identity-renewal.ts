import { LoopService, type BotDeps, type Service } from '../service.js';

/** Renews the bot identity's credential on the bot's renewal_interval (SIGHUP: now). */
export function identityRenewalService(deps: BotDeps): Service {
  const { botIdentity, resumed } = deps;
  return new LoopService('identity', deps, {
    label: 'identity renewal',
    intervalMs: deps.cfg.renewalIntervalMs,
    // a resumed daemon renews at once; a fresh join just got a new credential
    runFirst: resumed,
    // ready at once after a join: the credential it renews is brand new (not "initializing" for
    // one renewal_interval, which kept a readiness probe failing for 20 minutes)
    healthyAtStart: !resumed,
    counters: { ok: 'tbot_renewals_total', failed: 'tbot_renewal_failures_total' },
    job: () => botIdentity.renew(),
    // one-shot: a resumed credential is renewed once, a fresh one is used as it is
    oneShot: async () => {
      if (resumed) await botIdentity.renew();
    },
  });
}
