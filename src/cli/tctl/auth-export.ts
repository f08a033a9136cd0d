import type { AdminClient } from '../../api/admin-client.js';
import { usageError } from '../common.js';

/**
 * Teleport's `tctl auth export --type` names for the CAs mwi has, and mwi's own (`tctl ca export`).
 * `user` is the authorized_keys form (a `cert-authority` line) and `openssh` the key alone, for
 * sshd's TrustedUserCAKeys; `host` is a known_hosts `@cert-authority` line.
 */
const TYPES: Record<string, { ca: string; authorizedKeys?: true }> = {
  user: { ca: 'ssh-user', authorizedKeys: true },
  openssh: { ca: 'ssh-user' },
  host: { ca: 'ssh-host' },
  'tls-host': { ca: 'tls-host' },
  'tls-user': { ca: 'tls-user' },
  'ssh-user': { ca: 'ssh-user' },
  'ssh-host': { ca: 'ssh-host' },
  // workload identity: the SPIFFE CA as a PEM bundle (Teleport's export calls it tls-spiffe), the JWT keys as JWKS
  spiffe: { ca: 'spiffe' },
  'tls-spiffe': { ca: 'spiffe' },
  jwt: { ca: 'jwt' },
};

/** `tctl auth export --type TYPE`: a CA's public part, as Teleport's command prints it. */
export async function authExport(admin: AdminClient, type: string): Promise<string> {
  const t = Object.hasOwn(TYPES, type) ? TYPES[type] : undefined;
  if (!t)
    throw usageError(
      `mwi has no ${JSON.stringify(type)} CA to export (Teleport has more CAs): mwi exports user, host, openssh, ` +
        'tls-user, tls-host (or ssh-user, ssh-host), spiffe (or tls-spiffe) and jwt',
      '--type',
    );
  const text = await admin.exportCA(t.ca);
  return t.authorizedKeys ? `cert-authority ${text}` : text;
}
