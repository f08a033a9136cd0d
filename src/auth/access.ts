import { MwiError } from '../errors.js';
import { parseDuration } from '../util/duration.js';
import type { AuthContext } from './context.js';
import { MAX_TTL_MS } from './context.js';
import { LOGIN_PATTERN, type Bot, type Lock, type Role } from '../api/resources.js';
import type { Backend } from '../storage/backend.js';
import { ResourceCache } from './cache.js';

export interface BotAccess {
  bot: Bot;
  /** SSH principals from the bot's roles, with `{{internal.NAME}}` expanded from its traits. */
  logins: string[];
  /** Smallest max_session_ttl over the roles, capped at 24h. */
  maxTtlMs: number;
  /** The bot's roles that exist (a missing role grants nothing). */
  roles: Role[];
}

function expand(value: string, traits: Bot['spec']['traits']): string[] {
  const m = /^\{\{\s*internal\.([a-zA-Z0-9_]+)\s*\}\}$/.exec(value);
  if (!m) return value.includes('{{') ? [] : [value];
  // trait values are not checked when a bot is created: a blank one must not become a principal
  return (traits.find((t) => t.name === m[1])?.values ?? []).filter((v) => LOGIN_PATTERN.test(v));
}

/** Resolves what a bot may obtain, from the in-memory caches (storage only on a miss). */
export async function botAccess(ctx: AuthContext, botName: string): Promise<BotAccess> {
  const bot = await ctx.bots.fresh(botName);
  if (!bot) throw new MwiError('ACCESS_DENIED', `bot ${JSON.stringify(botName)} does not exist`);
  const logins = new Set<string>();
  const denied = new Set<string>();
  let maxTtlMs = MAX_TTL_MS;
  const roles: Role[] = [];
  for (const roleName of bot.spec.roles) {
    const role = await ctx.roles.fresh(roleName);
    if (!role) continue; // a missing role grants nothing
    roles.push(role);
    for (const l of role.spec.allow.logins) for (const v of expand(l, bot.spec.traits)) logins.add(v);
    for (const l of role.spec.deny.logins) for (const v of expand(l, bot.spec.traits)) denied.add(v);
    const ttl = role.spec.options.max_session_ttl ? parseDuration(role.spec.options.max_session_ttl) : undefined;
    if (ttl !== undefined) maxTtlMs = Math.min(maxTtlMs, ttl);
  }
  const botTtl = bot.spec.max_session_ttl ? parseDuration(bot.spec.max_session_ttl) : undefined;
  if (botTtl !== undefined) maxTtlMs = Math.min(maxTtlMs, botTtl);
  return {
    bot,
    logins: [...logins].filter((l) => !denied.has(l)).sort(),
    maxTtlMs,
    roles,
  };
}

/** TTL to grant: what was asked (default 1h), at most the roles' limit and 24h, at least 1s. */
export function grantedTtlMs(requestedSeconds: unknown, maxTtlMs: number, defaultMs: number): number {
  const asked =
    typeof requestedSeconds === 'number' && Number.isFinite(requestedSeconds) && requestedSeconds > 0
      ? requestedSeconds * 1000
      : defaultMs;
  return Math.max(1000, Math.min(asked, maxTtlMs, MAX_TTL_MS));
}

/** The index key of a lock: its one target (lock targets are indexed, not scanned). */
export function lockTargetKey(target: {
  user?: string | undefined;
  bot_instance_id?: string | undefined;
  join_token?: string | undefined;
}): string {
  if (target.user) return `user:${target.user}`;
  if (target.bot_instance_id) return `bot_instance_id:${target.bot_instance_id}`;
  return `join_token:${target.join_token ?? ''}`;
}

/** The lock cache the hot path checks: every lock, indexed by its target. */
export function openLockCache(backend: Backend): Promise<ResourceCache<Lock>> {
  return ResourceCache.open<Lock>(backend, '/locks/', (l) => [lockTargetKey(l.spec.target)]);
}

/** The lock in force for a bot, one of its instances, or the join token it came from, if any. */
export function activeLock(
  ctx: AuthContext,
  botName: string,
  instanceId?: string,
  tokenId?: string,
): string | undefined {
  const now = ctx.now();
  const targets = [
    lockTargetKey({ user: `bot-${botName}` }),
    ...(instanceId !== undefined ? [lockTargetKey({ bot_instance_id: instanceId })] : []),
    ...(tokenId !== undefined ? [lockTargetKey({ join_token: tokenId })] : []),
  ];
  for (const t of targets) {
    for (const lock of ctx.locks.lookup(t)) {
      if (lock.spec.expires && Date.parse(lock.spec.expires) <= now) continue;
      return lock.spec.message || lock.metadata.name;
    }
  }
  return undefined;
}
