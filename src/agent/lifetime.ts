import { z } from 'zod';
import { MwiError } from '../errors.js';
import { formatDuration, parseDuration } from '../util/duration.js';

/** The longest credential tbot asks for, its own or an output's. */
export const MAX_TTL_MS = 24 * 3600 * 1000;

export const duration = z
  .string()
  .refine((s) => parseDuration(s) !== undefined, 'expected a duration such as 20m or 1h');

/** How long a credential lives, and how often it is renewed. */
export interface Lifetime {
  credentialTtlMs: number;
  renewalIntervalMs: number;
}

/** `credential_ttl` and `renewal_interval` of an output (Teleport's CredentialLifetime). */
export const lifetimeFields = { credential_ttl: duration.optional(), renewal_interval: duration.optional() };

/**
 * An output's lifetime: both fields, or neither (then the bot's own), as Teleport's
 * CredentialLifetime. Errors name the field under `where` (`outputs[0].renewal_interval`).
 * `oneshot`: the interval is never used, so it is not checked against the TTL.
 */
export function resolveLifetime(
  raw: { credential_ttl?: string | undefined; renewal_interval?: string | undefined },
  bot: Lifetime,
  where: string,
  oneshot = false,
): Lifetime {
  const ttl = raw.credential_ttl ? parseDuration(raw.credential_ttl)! : bot.credentialTtlMs;
  const interval = raw.renewal_interval ? parseDuration(raw.renewal_interval)! : bot.renewalIntervalMs;
  if (ttl > MAX_TTL_MS) throw new MwiError('BAD_CONFIG', 'at most 24h', { field: `${where}.credential_ttl` });
  if (Boolean(raw.credential_ttl) !== Boolean(raw.renewal_interval)) {
    const [given, missing] = raw.credential_ttl
      ? ['credential_ttl', 'renewal_interval']
      : ['renewal_interval', 'credential_ttl'];
    throw new MwiError(
      'BAD_CONFIG',
      `required when ${given} is set: an output sets both or neither (as in Teleport), and takes the bot's ` +
        'when it sets neither',
      { field: `${where}.${missing}` },
    );
  }
  if (interval >= ttl && !oneshot) {
    const message = `must be less than credential_ttl (${formatDuration(interval)} >= ${formatDuration(ttl)})`;
    throw new MwiError('BAD_CONFIG', message, { field: `${where}.renewal_interval` });
  }
  return { credentialTtlMs: ttl, renewalIntervalMs: interval };
}
