import type { AdminClient } from '../../api/admin-client.js';
import { usageError } from '../common.js';
import { need, type Flags } from './shared.js';

/** Why mwi refuses Teleport's phased-rotation flags: it rotates in one step with a fixed grace period. */
const ONE_STEP =
  "mwi rotates in one step (Teleport's rotation goes through phases): the new key signs at once and the old " +
  'stays trusted 24h1m, the longest an SVID it signed can live; remove this flag';

/**
 * `tctl auth rotate --type spiffe|jwt`: a new SPIFFE CA or new JWT-SVID keys sign from now on;
 * the old stay in the trust bundle until every SVID they signed has expired.
 */
export async function authRotate(admin: AdminClient, g: Flags): Promise<string> {
  for (const flag of ['grace-period', 'manual', 'phase'] as const)
    if (g[flag] !== undefined && g[flag] !== false) throw usageError(ONE_STEP, `--${flag}`);
  const type = need(g.type, '--type');
  if (type !== 'spiffe' && type !== 'jwt')
    throw usageError(
      `mwi rotates the workload identity CAs only: spiffe (the X.509 SVID CA) or jwt (the JWT-SVID keys), ` +
        `not ${JSON.stringify(type)}`,
      '--type',
    );
  const r = await admin.rotateCA(type);
  return (
    `rotated the ${type === 'spiffe' ? 'SPIFFE CA' : 'JWT-SVID keys'}: new SVIDs are signed by the new ` +
    `${type === 'spiffe' ? 'CA' : 'keys'} now; the old stay trusted until ${r.old_trusted_until} ` +
    `(bundle revision ${r.revision})\n`
  );
}
