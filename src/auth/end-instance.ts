import type { EndInstanceRequest } from '../api/wire.js';
import { MwiError } from '../errors.js';
import { stripUnsafe } from '../util/text.js';
import type { Claims } from './claims.js';
import type { AuthContext } from './context.js';
import { currentInstance, requireBot } from './instances.js';

/**
 * POST /v1/instance/end: a bot ends its own instance (tbot does when a run that joined cannot
 * keep its identity), so that no orphan is left. Only the caller's instance, named by its
 * certificate, never one named in the body: a bot cannot end another. The instance is checked
 * as for any request made with it (locks, the generation counter: a stale copy of the identity
 * locks it rather than ends it), then deleted with a conditional write; from then on renewals,
 * certificates and heartbeats of that identity are refused (the instance no longer exists).
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
  const why = typeof asked.reason === 'string' ? stripUnsafe(asked.reason).slice(0, 256) : '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const { item } = await currentInstance(ctx, c, 'ACCESS_DENIED', { remoteAddr });
    if (!(await ctx.backend.delete(item.key, item.revision))) continue; // a heartbeat moved it: read again
    ctx.audit.emit({
      event: 'instance.ended',
      success: true,
      bot_name: c.bot,
      bot_instance_id: c.instance,
      generation: c.generation,
      remote_addr: remoteAddr,
      reason: `ended by the bot itself${why ? `: ${why}` : ''}`,
    });
    return { ok: true };
  }
  throw new MwiError('COMPARE_FAILED', 'the bot instance changed concurrently; try again');
}
