import { hostname, platform, release } from 'node:os';
import { PATHS, type HeartbeatRequest } from '../../api/wire.js';
import { VERSION } from '../../version.js';
import { LoopService, type BotDeps, type Service } from '../service.js';

const HEARTBEAT_INTERVAL_MS = 30 * 60 * 1000;

/** Tells the Auth Service what runs this bot instance: host, OS, version, uptime. */
export function heartbeatService(deps: BotDeps): Service {
  const { botIdentity, log } = deps;
  const beat = async (): Promise<void> => {
    const hb: HeartbeatRequest = {
      hostname: hostname(),
      os: `${platform()} ${release()}`,
      version: VERSION,
      uptime_seconds: Math.round((Date.now() - deps.startedAt) / 1000),
      one_shot: deps.cfg.oneshot,
    };
    await botIdentity.call(PATHS.heartbeat, hb);
  };
  return new LoopService('heartbeat', deps, {
    label: 'heartbeat',
    intervalMs: HEARTBEAT_INTERVAL_MS,
    retry: { initialMs: 5000, maxMs: 300_000 },
    // the identity renewal acts on a refusal; a heartbeat only retries
    bestEffort: true,
    job: beat,
    // one-shot: a run that wrote its outputs succeeded, heartbeat or not
    oneShot: () => beat().catch((err) => log.warn('heartbeat failed', { error: String(err) })),
  });
}
