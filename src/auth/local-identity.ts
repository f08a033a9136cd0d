import { createPublicKey } from 'node:crypto';
import { dirname } from 'node:path';
import { isIPv6 } from 'node:net';
import { adminIdentityPath, type IdentityFile } from '../api/local.js';
import { generateKeys } from '../crypto/keys.js';
import { issueCertificate } from '../crypto/x509.js';
import { mkdirPrivate, writeFileAtomic } from '../util/fs.js';
import type { AuthContext } from './context.js';

/** Lifetime of the Auth Service's own TLS certificate. */
const SERVER_TTL_MS = 7 * 24 * 3600 * 1000;
/**
 * Lifetime of the local admin identity. It cannot be revoked (a lock on the only admin would
 * lock out the unlock), so it is short-lived instead: a copy of the file is admin for at most
 * this long. tctl needs a running Auth Service anyway, which keeps the file fresh.
 */
export const ADMIN_IDENTITY_TTL_MS = 4 * 3600 * 1000;
/** How often the running Auth Service re-issues the admin identity (and its own certificate). */
export const LOCAL_REFRESH_MS = 3600 * 1000;

/**
 * Issues (or re-issues) the local admin identity, valid for `ADMIN_IDENTITY_TTL_MS`; the key is
 * generated here and stays here, written 0600.
 */
export async function writeAdminIdentity(ctx: AuthContext, dataDir: string): Promise<void> {
  const keys = await generateKeys('ec-p256');
  const { certPem, notAfter } = await issueCertificate({
    ca: ctx.cas.tlsUser,
    publicKey: createPublicKey(keys.publicKeyPem).export({ type: 'spki', format: 'der' }),
    commonName: 'admin',
    organization: ['mwi-admin'],
    ttlMs: ADMIN_IDENTITY_TTL_MS,
    usage: 'client',
    identity: { kind: 'admin', user: 'admin' },
    now: ctx.now(),
  });
  const file: IdentityFile = {
    cert: certPem,
    key: keys.privateKeyPem,
    ca_certs: [ctx.cas.tlsHost.certPem, ctx.cas.tlsUser.certPem],
    cluster_name: ctx.cas.clusterName,
    expires: notAfter.toISOString(),
  };
  mkdirPrivate(dirname(adminIdentityPath(dataDir)));
  writeFileAtomic(adminIdentityPath(dataDir), JSON.stringify(file, null, 2));
}

/**
 * Each name once: the listen address, the host name and tls_sans often repeat the defaults
 * (127.0.0.1, localhost). DNS names compare without case, IPv6 addresses in their short form;
 * the first spelling stays, in order.
 */
export function uniqueSans(sans: { dns: string[]; ips: string[] }): { dns: string[]; ips: string[] } {
  const once = (list: string[], norm: (s: string) => string) => {
    const seen = new Set<string>();
    return list.filter((s) => !seen.has(norm(s)) && Boolean(seen.add(norm(s))));
  };
  const ip = (s: string) => {
    if (!isIPv6(s)) return s;
    try {
      return new URL(`http://[${s}]/`).hostname;
    } catch {
      return s.toLowerCase();
    }
  };
  return { dns: once(sans.dns, (s) => s.toLowerCase().replace(/\.$/, '')), ips: once(sans.ips, ip) };
}

/** The Auth Service's own TLS certificate, for a key it generates, valid for its usual names (each once). */
export async function issueServerCert(
  ctx: AuthContext,
  names: { dns: string[]; ips: string[] },
): Promise<{ cert: string; key: string }> {
  const sans = uniqueSans(names);
  const keys = await generateKeys('ec-p256');
  const { certPem } = await issueCertificate({
    ca: ctx.cas.tlsHost,
    publicKey: createPublicKey(keys.publicKeyPem).export({ type: 'spki', format: 'der' }),
    commonName: 'auth.mwi.cluster.local',
    organization: [ctx.cas.clusterName],
    ttlMs: SERVER_TTL_MS,
    usage: 'server',
    dnsNames: sans.dns,
    ipAddresses: sans.ips,
    now: ctx.now(),
  });
  return { cert: `${certPem}${ctx.cas.tlsHost.certPem}`, key: keys.privateKeyPem };
}
