import type { CertsRequest, CertsResponse } from '../api/wire.js';
import { parseClientKey } from '../crypto/keys.js';
import { failureReason } from '../errors.js';
import { botAccess, grantedTtlMs } from './access.js';
import type { Claims } from './claims.js';
import { DEFAULT_TTL_MS, type AuthContext } from './context.js';
import { confirmGeneration, currentInstance, keyFingerprint, originFields, requireBot } from './instances.js';
import { signOutputCerts } from './issue.js';

/** POST /v1/certs: short-lived credentials for an output, for a key tbot generated; audited with serials. */
export async function handleCerts(
  ctx: AuthContext,
  claims: Claims | undefined,
  body: unknown,
  remoteAddr: string,
): Promise<CertsResponse> {
  const c = requireBot(claims, 'ACCESS_DENIED');
  const req = (body ?? {}) as Partial<CertsRequest>;
  let fingerprint: string | undefined;
  try {
    const publicKey = parseClientKey(req.public_key, 'public_key');
    fingerprint = keyFingerprint(publicKey);
    // a certificate request is never a renewal retry: no key is offered for that check
    await confirmGeneration(ctx, await currentInstance(ctx, c, 'ACCESS_DENIED', { remoteAddr }));
    const access = await botAccess(ctx, c.bot);
    const ttlMs = grantedTtlMs(req.ttl_seconds, access.maxTtlMs, DEFAULT_TTL_MS);
    const issued = await signOutputCerts(ctx, access, c.instance, publicKey, ttlMs);
    const { certs } = issued;
    // what was issued, to match a certificate later seen by sshd or a TLS server
    ctx.audit.emit({
      event: 'bot.certs',
      success: true,
      bot_name: c.bot,
      bot_instance_id: c.instance,
      generation: c.generation,
      ...originFields({ remoteAddr, keyFingerprint: fingerprint }),
      tls_serial: issued.tlsSerial,
      ssh_serial: issued.sshSerial,
      logins: certs.logins,
      ttl_seconds: Math.round(ttlMs / 1000),
      expires: certs.expires,
    });
    return certs;
  } catch (err) {
    ctx.audit.emit({
      event: 'bot.certs',
      success: false,
      bot_name: c.bot,
      bot_instance_id: c.instance,
      ...originFields({ remoteAddr, keyFingerprint: fingerprint }),
      reason: failureReason(err),
    });
    throw err;
  }
}
