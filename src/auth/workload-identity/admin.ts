import { MwiError } from '../../errors.js';
import type { AuthContext } from '../context.js';
import { ROTATION_GRACE_MS } from './keys.js';

/** The workload identity CAs by Teleport's CA type names (`tctl auth rotate --type`, `tctl auth export --type`). */
export const WORKLOAD_CA_TYPES = ['spiffe', 'jwt'] as const;
export type WorkloadCAType = (typeof WORKLOAD_CA_TYPES)[number];

export function isWorkloadCA(type: string): type is WorkloadCAType {
  return (WORKLOAD_CA_TYPES as readonly string[]).includes(type);
}

function workloadOf(ctx: AuthContext) {
  if (!ctx.workload) throw new MwiError('NOT_FOUND', 'workload identity is not set up on this Auth Service');
  return ctx.workload;
}

/**
 * What `tctl auth export` prints: `spiffe`, the PEM bundle of every SPIFFE CA trusted now
 * (what openssl verify -CAfile and a SPIFFE peer read); `jwt`, the JWKS of the JWT-SVID keys.
 */
export async function exportWorkloadCA(ctx: AuthContext, type: WorkloadCAType): Promise<string> {
  const { bundle } = await workloadOf(ctx).authorities.current();
  if (type === 'spiffe') return bundle.x509_authorities_pem.join('');
  return `${JSON.stringify(bundle.jwks, null, 2)}\n`;
}

/** POST /v1/admin/ca/:type/rotate: rotates at once, audited; the old CA or keys stay trusted for the grace period. */
export async function rotateWorkloadCA(
  ctx: AuthContext,
  type: string,
  user: string,
): Promise<{ type: string; revision: string; old_trusted_until: string }> {
  if (!isWorkloadCA(type))
    throw new MwiError(
      'BAD_REQUEST',
      `mwi rotates only the workload identity CAs (spiffe, jwt), not ${JSON.stringify(type)}: its other CAs ` +
        'have no rotation yet',
      { field: 'type' },
    );
  const revision = await workloadOf(ctx).authorities.rotate(type);
  const oldTrustedUntil = new Date(ctx.now() + ROTATION_GRACE_MS).toISOString();
  ctx.audit.emit({
    event: 'workload_identity.rotate',
    success: true,
    user,
    resource: `cert_authority/${type}`,
    revision,
    old_trusted_until: oldTrustedUntil,
  });
  return { type, revision, old_trusted_until: oldTrustedUntil };
}
