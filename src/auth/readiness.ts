import { key } from '../storage/backend.js';
import type { AuthContext } from './context.js';

/** What /readyz reports: each check, and a reason for each that failed. */
export interface Readiness {
  ready: boolean;
  checks: Record<string, { ok: boolean; reason?: string }>;
}

/** How long /readyz waits for storage to answer. */
const STORAGE_CHECK_MS = 2000;

/** Storage answers a read within STORAGE_CHECK_MS. */
async function storageCheck(ctx: AuthContext): Promise<Readiness['checks'][string]> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      ctx.backend.get(key('cluster', 'name')),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${STORAGE_CHECK_MS} ms`)), STORAGE_CHECK_MS);
      }),
    ]);
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: `storage unreachable: ${err instanceof Error ? err.message : String(err)}` };
  } finally {
    clearTimeout(timer);
  }
}

/** The TLS CAs are loaded (they are, once ctx exists) and within their validity. */
function casCheck(ctx: AuthContext): Readiness['checks'][string] {
  const now = ctx.now();
  const { tlsHost, tlsUser } = ctx.cas;
  const problems = Object.entries({ 'tls-host': tlsHost, 'tls-user': tlsUser }).flatMap(([name, ca]) => {
    const [from, to] = [Date.parse(ca.cert.validFrom), Date.parse(ca.cert.validTo)];
    if (now >= to) return [`${name} CA expired at ${new Date(to).toISOString()}`];
    return now < from ? [`${name} CA not valid before ${new Date(from).toISOString()}`] : [];
  });
  return problems.length ? { ok: false, reason: problems.join('; ') } : { ok: true };
}

/** A started Auth Service's readiness: storage reachable, CAs valid, not shutting down. */
export async function checkReadiness(ctx: AuthContext, closing: boolean): Promise<Readiness> {
  const checks: Readiness['checks'] = {};
  if (closing) checks.shutdown = { ok: false, reason: 'shutting down' };
  checks.storage = await storageCheck(ctx);
  checks.cas = casCheck(ctx);
  return { ready: Object.values(checks).every((c) => c.ok), checks };
}
