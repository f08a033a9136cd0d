import { randomUUID } from 'node:crypto';
import { key } from '../storage/backend.js';
import { lockTargetKey } from './access.js';
import type { AuthContext } from './context.js';
import type { Lock } from '../api/resources.js';

/**
 * Stores a lock the Auth Service makes itself, on evidence that a credential was used from two
 * places (a copied identity, a bound keypair used twice), and returns its name. The caller
 * audits it under its own event.
 */
export async function createLock(ctx: AuthContext, target: Lock['spec']['target'], reason: string): Promise<string> {
  const name = randomUUID();
  const lock: Lock = {
    kind: 'lock',
    version: 'v2',
    metadata: { name },
    spec: { target, message: reason, created_by: 'mwi', created_at: new Date(ctx.now()).toISOString() },
  };
  await ctx.backend.put(key('locks', name), JSON.stringify(lock));
  return name;
}

/**
 * The lock in force on operator `user` (an identity from `tctl auth sign --admin`): a lock whose
 * target is `user: NAME`, the target that names bot NAME's user as `bot-NAME`, so no new target
 * kind is needed. The local admin identity is never looked up: it cannot be locked (a lock on
 * the only admin would also refuse its removal), it is short-lived instead.
 */
export function operatorLock(ctx: AuthContext, user: string): string | undefined {
  const now = ctx.now();
  for (const lock of ctx.locks.lookup(lockTargetKey({ user }))) {
    if (lock.spec.expires && Date.parse(lock.spec.expires) <= now) continue;
    return lock.spec.message || lock.metadata.name;
  }
  return undefined;
}
