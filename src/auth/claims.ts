import { findUtf8Extension } from '../crypto/der.js';
import { IDENTITY_OID } from '../crypto/x509.js';

/**
 * Identity claims embedded in every client certificate the user TLS CA issues. They are read
 * only from certificates whose chain TLS has verified against that CA.
 */
export type Claims =
  | { kind: 'admin'; user: string }
  /** tbot's internal identity: the only certificate that may renew. */
  | { kind: 'bot'; bot: string; instance: string; generation: number }
  /** Credentials written to outputs for workloads: usable as an identity, never to renew. */
  | { kind: 'output'; bot: string; instance: string };

export function claimsFromCert(der: Uint8Array): Claims | undefined {
  const text = findUtf8Extension(der, IDENTITY_OID);
  if (!text) return undefined;
  try {
    const c = JSON.parse(text) as Claims;
    return typeof c === 'object' && c !== null && typeof c.kind === 'string' ? c : undefined;
  } catch {
    return undefined;
  }
}
