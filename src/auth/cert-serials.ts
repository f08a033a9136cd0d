import { X509Certificate } from 'node:crypto';
import type { CertsResponse } from '../api/wire.js';

/** Public-key fields before the serial in an OpenSSH certificate (PROTOCOL.certkeys), by key type. */
const KEY_FIELDS: Record<string, number> = {
  'ssh-ed25519': 1,
  'ecdsa-sha2-nistp256': 2,
  'ecdsa-sha2-nistp384': 2,
  'ecdsa-sha2-nistp521': 2,
  'ssh-rsa': 2,
  'sk-ssh-ed25519@openssh.com': 2,
  'sk-ecdsa-sha2-nistp256@openssh.com': 3,
};

/**
 * The serial of an OpenSSH certificate line, as a decimal string (what `ssh-keygen -L` and
 * sshd's log show), or undefined if the line is not a certificate this parser knows.
 */
export function sshCertSerial(line: string): string | undefined {
  const blob = Buffer.from(line.trim().split(/\s+/)[1] ?? '', 'base64');
  let off = 0;
  const skip = (): Buffer | undefined => {
    if (off + 4 > blob.length) return undefined;
    const len = blob.readUInt32BE(off);
    if (off + 4 + len > blob.length) return undefined;
    const v = blob.subarray(off + 4, off + 4 + len);
    off += 4 + len;
    return v;
  };
  const type = skip()?.toString().replace(/-cert-v01@openssh\.com$/, '');
  const fields = type ? KEY_FIELDS[type] : undefined;
  if (fields === undefined || !skip()) return undefined; // nonce
  for (let i = 0; i < fields; i++) if (!skip()) return undefined;
  return off + 8 <= blob.length ? blob.readBigUInt64BE(off).toString() : undefined;
}

/**
 * What a `/v1/certs` answer issued, for its audit event: both serials (to match the certificate
 * later seen by sshd or a TLS server), the logins and the lifetime. Nothing secret.
 */
export function issuedFields(certs: CertsResponse, ttlMs: number): Record<string, unknown> {
  const sshSerial = sshCertSerial(certs.ssh_cert);
  return {
    tls_serial: new X509Certificate(certs.tls_cert).serialNumber.toLowerCase(),
    ...(sshSerial !== undefined ? { ssh_serial: sshSerial } : {}),
    logins: certs.logins,
    ttl_seconds: Math.round(ttlMs / 1000),
    expires: certs.expires,
  };
}
