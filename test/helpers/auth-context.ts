import { X509Certificate } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AdminApi } from '../../src/auth/admin.js';
import { claimsFromCert, type Claims } from '../../src/auth/claims.js';
import { FileAuditLog } from '../../src/auth/audit.js';
import { loadAuthorities } from '../../src/auth/authorities.js';
import { ResourceCache } from '../../src/auth/cache.js';
import type { AuthContext } from '../../src/auth/context.js';
import type { Bot, Role } from '../../src/api/resources.js';
import { openLockCache } from '../../src/auth/access.js';
import { MemoryBackend } from '../../src/storage/memory.js';
import { joinHandlers } from '../../src/auth/platform.js';
import type { OidcConfig } from '../../src/join/jwt/jwks.js';
import type { KubernetesConfig } from '../../src/join/kubernetes/server.js';
import { fakeClock, type FakeClock } from './clock.js';

/** An in-process Auth Service core on the memory backend with a fake clock. */
export async function testContext(
  oidc: OidcConfig = {},
  k8s: KubernetesConfig = {},
): Promise<{ ctx: AuthContext; admin: AdminApi; clock: FakeClock; auditPath: string }> {
  const clock = fakeClock(Date.now());
  const backend = new MemoryBackend(clock.now);
  const auditPath = join(mkdtempSync(join(tmpdir(), 'mwi-audit-')), 'events.log');
  const ctx: AuthContext = {
    backend,
    cas: await loadAuthorities(backend, 'unit'),
    audit: new FileAuditLog(auditPath, clock.now),
    now: clock.now,
    roles: await ResourceCache.open<Role>(backend, '/roles/'),
    bots: await ResourceCache.open<Bot>(backend, '/bots/'),
    locks: await openLockCache(backend),
    // the environment is the test's: no Kubernetes service account is found by accident
    methods: joinHandlers(backend, clock.now, { oidc, kubernetes: k8s }, {}),
  };
  return { ctx, admin: new AdminApi(ctx), clock, auditPath };
}

/** The bot claims of an identity certificate. */
export const claimsOf = (pem: string) =>
  claimsFromCert(new X509Certificate(pem).raw) as Extract<Claims, { kind: 'bot' }>;

/**
 * Role `ci` (login deploy), bot `ci` with it, and a github token per entry of `tokens` (name →
 * its `spec.github` block, if any) allowing the repository octo/app.
 */
export async function addGithubBot(admin: AdminApi, tokens: Record<string, object | undefined>): Promise<void> {
  await admin.create(
    { kind: 'role', metadata: { name: 'ci' }, spec: { allow: { logins: ['deploy'] } } },
    false,
    'admin',
  );
  await admin.create({ kind: 'bot', metadata: { name: 'ci' }, spec: { roles: ['ci'] } }, false, 'admin');
  for (const [name, github] of Object.entries(tokens)) {
    const spec = { join_method: 'github', bot_name: 'ci', ...(github ? { github } : {}) };
    await admin.create(
      { kind: 'token', metadata: { name }, spec: { ...spec, allow: [{ repository: 'octo/app' }] } },
      false,
      'admin',
    );
  }
}
