import { randomUUID } from 'node:crypto';
import { key } from '../storage/backend.js';
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
