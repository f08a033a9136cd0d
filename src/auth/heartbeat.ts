import type { HeartbeatRequest } from '../api/wire.js';
import { isMwiError, MwiError } from '../errors.js';
import { stripUnsafe } from '../util/text.js';
import type { Claims } from './claims.js';
import type { AuthContext } from './context.js';
import { currentInstance, requireBot } from './instances.js';

const HEARTBEATS_KEPT = 10;

/**
 * A self-reported heartbeat field: control and bidi characters removed, so no reader's terminal
 * acts on them (issue #9, finding 9).
 */
export function selfReported(v: unknown, max = 256): string {
  return typeof v === 'string' ? stripUnsafe(v).slice(0, max) : '';
}

/** POST /v1/heartbeat: records tbot's self-reported host details on its instance. */
export async function handleHeartbeat(
  ctx: AuthContext,
  claims: Claims | undefined,
  body: unknown,
  remoteAddr = '',
): Promise<{ ok: true }> {
  const c = requireBot(claims, 'ACCESS_DENIED');
  const hb = (body ?? {}) as Partial<HeartbeatRequest>;
  const entry = {
    recorded_at: new Date(ctx.now()).toISOString(),
    hostname: selfReported(hb.hostname),
    os: selfReported(hb.os, 64),
    version: selfReported(hb.version, 64),
    uptime_seconds: typeof hb.uptime_seconds === 'number' ? Math.max(0, Math.floor(hb.uptime_seconds)) : 0,
    one_shot: hb.one_shot === true,
  };
  for (let attempt = 0; attempt < 3; attempt++) {
    const { item, instance, retry } = await currentInstance(ctx, c, 'ACCESS_DENIED', { remoteAddr });
    if (!retry) instance.status.generation_confirmed = true;
    instance.status.latest_heartbeats = [entry, ...instance.status.latest_heartbeats].slice(0, HEARTBEATS_KEPT);
    try {
      await ctx.backend.compareAndSwap(item.key, item.revision, JSON.stringify(instance), { expires: item.expires });
      return { ok: true };
    } catch (err) {
      if (!isMwiError(err, 'COMPARE_FAILED')) throw err;
    }
  }
  throw new MwiError('COMPARE_FAILED', 'the bot instance changed concurrently; try again');
}
