import { randomUUID } from 'node:crypto';
import type { IdentityResponse, JoinRequest } from '../api/wire.js';
import { parseClientPublicKey, sha256Hex } from '../crypto/keys.js';
import { isMwiError, MwiError } from '../errors.js';
import { joinMethodInfo, joinMethodNames } from '../join/catalog.js';
import { SERVER_METHODS } from '../join/servers.js';
import { JoinRefusal } from '../join/types.js';
import { key } from '../storage/backend.js';
import { activeLock, botAccess, grantedTtlMs } from './access.js';
import { DEFAULT_TTL_MS, INSTANCE_GRACE_MS, type AuthContext } from './context.js';
import { issueBotIdentity } from './issue.js';
import type { BotInstance, StoredToken } from './resources.js';
import { tokenId, tokenKey } from './tokens.js';

export function instanceKey(botName: string, instanceId: string): string {
  return key('bot_instances', botName, instanceId);
}

function checkShape(body: unknown): JoinRequest {
  const r = body as Partial<JoinRequest> | null;
  if (typeof r !== 'object' || r === null) throw new MwiError('BAD_REQUEST', 'expected a JSON object');
  if (typeof r.token !== 'string' || r.token.length === 0 || r.token.length > 512) throw new MwiError('BAD_REQUEST', 'expected a token', { field: 'token' });
  if (typeof r.join_method !== 'string') throw new MwiError('BAD_REQUEST', 'expected a join method', { field: 'join_method' });
  return r as JoinRequest;
}

/**
 * POST /v1/join: checks the token and the method's proof, creates a bot instance and signs its
 * first renewable identity. Every refusal is audited with its reason; the caller gets only a
 * generic message.
 */
export async function handleJoin(ctx: AuthContext, body: unknown, remoteAddr: string): Promise<IdentityResponse> {
  const req = checkShape(body);
  const method = SERVER_METHODS.get(req.join_method);
  if (!method) {
    throw new MwiError('BAD_REQUEST', `unknown join method ${JSON.stringify(req.join_method)} (expected one of: ${joinMethodNames().join(', ')})`, { field: 'join_method' });
  }
  const publicKey = parseClientPublicKey(req.public_key, 'public_key');
  const id = tokenId(req.token, req.join_method);
  const audit = { join_method: req.join_method, token_id: id, remote_addr: remoteAddr };
  let botName: string | undefined;
  try {
    const item = await ctx.backend.get(tokenKey(id));
    if (!item) throw new JoinRefusal('token not found');
    const token = JSON.parse(item.value) as StoredToken;
    botName = token.spec.bot_name;
    if (token.spec.join_method !== req.join_method) throw new JoinRefusal(`token is for join method ${token.spec.join_method}`);
    if (token.metadata.expires && Date.parse(token.metadata.expires) <= ctx.now()) throw new JoinRefusal('token expired');
    const lock = activeLock(ctx, botName);
    if (lock) throw new MwiError('LOCKED', `bot ${botName} is locked: ${lock}`);
    const access = botAccess(ctx, botName);
    const verdict = await method.verify({
      request: req,
      token: { id, botName, spec: token.spec, secretHash: token.secret_hash },
      clusterName: ctx.cas.clusterName,
      now: ctx.now(),
      consumeToken: async () => {
        const ok = await ctx.backend.delete(tokenKey(id), item.revision);
        if (ok) ctx.audit.emit({ event: 'token.use', success: true, bot_name: botName, ...audit });
        return ok;
      },
    });

    const instanceId = randomUUID();
    const ttlMs = grantedTtlMs(req.ttl_seconds, access.maxTtlMs, DEFAULT_TTL_MS);
    const identity = await issueBotIdentity(ctx, botName, instanceId, 1, publicKey, ttlMs);
    const at = new Date(ctx.now()).toISOString();
    const instance: BotInstance = {
      kind: 'bot_instance',
      version: 'v1',
      metadata: { name: instanceId, expires: new Date(Date.parse(identity.expires) + INSTANCE_GRACE_MS).toISOString() },
      spec: { bot_name: botName, instance_id: instanceId },
      status: {
        initial_authentication: { auth_at: at, join_method: req.join_method, join_token_name: id, ...(verdict.attributes ? { metadata: verdict.attributes } : {}) },
        latest_authentication: { auth_at: at, join_method: req.join_method, generation: 1 },
        generation: 1,
        generation_confirmed: true,
        public_key_fingerprint: sha256Hex(publicKey.export({ type: 'spki', format: 'der' })),
        latest_heartbeats: [],
      },
    };
    await ctx.backend.create(instanceKey(botName, instanceId), JSON.stringify(instance), { expires: Date.parse(instance.metadata.expires) });
    ctx.audit.emit({ event: 'bot.join', success: true, bot_name: botName, bot_instance_id: instanceId, generation: 1, ...audit });
    return { ...identity, renewable: joinMethodInfo(req.join_method)?.renewable ?? false };
  } catch (err) {
    const reason = err instanceof JoinRefusal ? err.reason : isMwiError(err) ? err.detail ?? err.message : String(err);
    ctx.audit.emit({ event: 'bot.join', success: false, ...(botName ? { bot_name: botName } : {}), ...audit, reason });
    if (err instanceof JoinRefusal) throw new MwiError('JOIN_DENIED', err.publicMessage, { detail: err.reason });
    if (isMwiError(err, 'LOCKED')) throw err;
    if (isMwiError(err, 'ACCESS_DENIED')) throw new MwiError('JOIN_DENIED', 'the join was refused; the Auth Service audit log has the reason', { detail: err.message });
    throw err;
  }
}
