import type { z } from 'zod';
import { parseClientKey, type ClientKey } from '../crypto/keys.js';
import { failureReason } from '../errors.js';
import { parseWith } from '../util/parse.js';
import { botAccess, grantedTtlMs, type BotAccess } from './access.js';
import type { Claims } from './claims.js';
import { DEFAULT_TTL_MS, type AuthContext } from './context.js';
import {
  confirmGeneration,
  currentInstance,
  keyFingerprint,
  originFields,
  requireBot,
  type BotClaims,
} from './instances.js';

/** What a certificate output's request carries in any case: the key to certify and a wished TTL. */
interface OutputCertRequest {
  public_key: string;
  ttl_seconds?: number | undefined;
}

/** What a certificate output made: its reply, its own audit fields, when it expires. */
export interface OutputCert<Reply> {
  reply: Reply;
  audit: Record<string, unknown>;
  expires: Date;
}

/** What a route's signing is given: the caller, its request and key, its access and the granted TTL. */
export interface IssueArgs<Req> {
  ctx: AuthContext;
  c: BotClaims;
  req: Req;
  publicKey: ClientKey;
  access: BotAccess;
  ttlMs: number;
}

/** One certificate output's route: its body schema, its name in the audit log, its checks and its signing. */
export interface OutputCertRoute<Req extends OutputCertRequest, Reply> {
  schema: z.ZodType<Req>;
  /** `output:` of the bot.certs event. */
  output: string;
  /** Checks of the request alone, before the caller's instance is looked at. */
  precheck?: (req: Req) => void;
  /** Checks the bot's access and signs `publicKey` for `ttlMs`. */
  issue: (a: IssueArgs<Req>) => Promise<OutputCert<Reply>>;
}

/**
 * The handler of a bot's certificate output (POST /v1/certs/database, /v1/certs/ssh_host), in one
 * course: a bot identity, the body and its public key, the caller's instance current (generation,
 * lock), the bot's access and TTL rules, then the route's signing; audited as bot.certs either way.
 */
export function outputCertHandler<Req extends OutputCertRequest, Reply>(
  route: OutputCertRoute<Req, Reply>,
): (ctx: AuthContext, claims: Claims | undefined, body: unknown, remoteAddr: string) => Promise<Reply> {
  return (ctx, claims, body, remoteAddr) => handleOutputCert(route, ctx, claims, body, remoteAddr);
}

async function handleOutputCert<Req extends OutputCertRequest, Reply>(
  route: OutputCertRoute<Req, Reply>,
  ctx: AuthContext,
  claims: Claims | undefined,
  body: unknown,
  remoteAddr: string,
): Promise<Reply> {
  const c = requireBot(claims, 'ACCESS_DENIED');
  let fingerprint: string | undefined;
  try {
    const req = parseWith(route.schema, body ?? {}, { code: 'BAD_REQUEST' });
    const publicKey = parseClientKey(req.public_key, 'public_key');
    fingerprint = keyFingerprint(publicKey);
    route.precheck?.(req);
    await confirmGeneration(ctx, await currentInstance(ctx, c, 'ACCESS_DENIED', { remoteAddr }));
    const access = await botAccess(ctx, c.bot);
    const ttlMs = grantedTtlMs(req.ttl_seconds, access.maxTtlMs, DEFAULT_TTL_MS);
    const made = await route.issue({ ctx, c, req, publicKey, access, ttlMs });
    ctx.audit.emit({
      event: 'bot.certs',
      success: true,
      output: route.output,
      bot_name: c.bot,
      bot_instance_id: c.instance,
      generation: c.generation,
      ...originFields({ remoteAddr, keyFingerprint: fingerprint }),
      ...made.audit,
      ttl_seconds: Math.round(ttlMs / 1000),
      expires: made.expires.toISOString(),
    });
    return made.reply;
  } catch (err) {
    ctx.audit.emit({
      event: 'bot.certs',
      success: false,
      output: route.output,
      bot_name: c.bot,
      bot_instance_id: c.instance,
      ...originFields({ remoteAddr, keyFingerprint: fingerprint }),
      reason: failureReason(err),
    });
    throw err;
  }
}
