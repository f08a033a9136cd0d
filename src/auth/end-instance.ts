import type { EndInstanceRequest } from '../api/wire.js';
import type { BotInstance } from '../api/resources.js';
import { isMwiError, MwiError } from '../errors.js';
import type { Claims } from './claims.js';
import type { AuthContext } from './context.js';
import { selfReported } from './heartbeat.js';
import { currentInstance, requireBot } from './instances.js';

/**
 * POST /v1/instance/end: a bot ends its own instance (tbot does when a run that joined cannot
 * keep its identity), so that no orphan is left. Only the caller's instance, named by its
 * certificate, never one named in the body: a bot cannot end another. The instance is checked
 * as for any request made with it (locks, the generation counter: a stale copy of the identity
 * locks it rather than ends it), then marked ended with a conditional write. It is not deleted:
 * anyone holding the identity can end it, so a stolen copy could otherwise erase the evidence
 * (authentications, heartbeats, the generation counter that reveals a copy). From then on every
 * use of the identity is refused as LOCKED, saying a holder of the identity ended it, and the
 * record stays until it expires.
 */
export async function handleEndInstance(
  ctx: AuthContext,
  claims: Claims | undefined,
  body: unknown,
  remoteAddr = '',
): Promise<{ ok: true }> {
  const c = requireBot(claims, 'ACCESS_DENIED');
  const asked = (body ?? {}) as Partial<EndInstanceRequest>;
  // self-reported: shown to operators, so stripped like a heartbeat's fields
  const why = selfReported(asked.reason);
  const reason = `ended by a holder of its identity${why ? `: ${why}` : ''}`;
  for (let attempt = 0; attempt < 3; attempt++) {
    const { item, instance } = await currentInstance(ctx, c, 'ACCESS_DENIED', { remoteAddr });
    const ended: BotInstance = {
      ...instance,
      status: {
        ...instance.status,
        ended: { at: new Date(ctx.now()).toISOString(), reason, generation: c.generation },
      },
    };
    try {
      await ctx.backend.compareAndSwap(item.key, item.revision, JSON.stringify(ended), { expires: item.expires });
    } catch (err) {
      if (!isMwiError(err, 'COMPARE_FAILED')) throw err;
      continue; // a heartbeat moved it: read again
    }
    ctx.audit.emit({
      event: 'instance.ended',
      success: true,
      bot_name: c.bot,
      bot_instance_id: c.instance,
      generation: c.generation,
      remote_addr: remoteAddr,
      reason,
    });
    return { ok: true };
  }
  throw new MwiError('COMPARE_FAILED', 'the bot instance changed concurrently; try again');
}
