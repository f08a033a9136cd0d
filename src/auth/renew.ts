import type { BotCredentialResponse, RenewRequest } from '../api/wire.js';
import { parseClientKey } from '../crypto/keys.js';
import { failureReason, MwiError } from '../errors.js';
import { joinMethodInfo } from '../join/catalog.js';
import { grantedTtlMs } from './access.js';
import type { Claims } from './claims.js';
import { DEFAULT_TTL_MS, type AuthContext } from './context.js';
import {
  keyFingerprint,
  originFields,
  refreshInstance,
  requireBot,
  type BotClaims,
  type ContinueCheck,
} from './instances.js';
import { tokenKey, type StoredToken } from './tokens.js';

/**
 * What a renewal requires of the instance's first join: a renewable method (platform-signed
 * identities are not: each one is a fresh join with a fresh document), and whatever that method
 * says from its token as stored: a refusal (bound keypair: the key was rebound to a later
 * instance) or hints for the answer.
 */
function renewalCheck(ctx: AuthContext, c: BotClaims): ContinueCheck {
  return async (first) => {
    if (!joinMethodInfo(first.join_method)?.renewable) {
      throw new MwiError('RENEW_DENIED', `identities from join method ${first.join_method} do not renew; join again`);
    }
    const method = ctx.methods.get(first.join_method);
    if (!method?.renewHints && !method?.renewRefusal) return {};
    const t = await ctx.backend.get(tokenKey(first.join_token_name));
    if (!t) return {};
    const token = JSON.parse(t.value) as StoredToken;
    const status = token.status ?? {};
    const view = { id: first.join_token_name, botName: c.bot, spec: token.spec, status };
    const refusal = method.renewRefusal?.(view, c.instance);
    if (refusal) {
      const message = 'this bot instance was replaced by a later join and can no longer renew';
      throw new MwiError('RENEW_DENIED', message, { detail: refusal });
    }
    return method.renewHints?.(view, ctx.now()) ?? {};
  };
}

/** POST /v1/renew: new internal identity, generation + 1, one conditional write. */
export async function handleRenew(
  ctx: AuthContext,
  claims: Claims | undefined,
  body: unknown,
  remoteAddr: string,
): Promise<BotCredentialResponse> {
  const c = requireBot(claims, 'RENEW_DENIED');
  const req = (body ?? {}) as Partial<RenewRequest>;
  let fingerprint: string | undefined;
  try {
    const publicKey = parseClientKey(req.public_key, 'public_key');
    fingerprint = keyFingerprint(publicKey);
    const ttlMs = grantedTtlMs(req.ttl_seconds, Infinity, DEFAULT_TTL_MS);
    const origin = { remoteAddr, keyFingerprint: fingerprint };
    return await refreshInstance(ctx, c, publicKey, ttlMs, origin, renewalCheck(ctx, c));
  } catch (err) {
    ctx.audit.emit({
      event: 'bot.renew',
      success: false,
      bot_name: c.bot,
      bot_instance_id: c.instance,
      generation: c.generation,
      ...originFields({ remoteAddr, keyFingerprint: fingerprint }),
      reason: failureReason(err),
    });
    throw err;
  }
}
