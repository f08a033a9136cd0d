import { createHash, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { MwiError } from '../errors.js';


/** Key algorithms mwi creates: ECDSA P-256 for TLS and bot identities, Ed25519 for SSH CAs. */
export type KeyAlgorithm = 'ec-p256' | 'ed25519';

export interface PemKeyPair {
  /** PKCS#8 PEM; never leaves the process that generated it except to its own 0600 files. */
  privateKeyPem: string;
  /** SubjectPublicKeyInfo PEM. */
  publicKeyPem: string;
}

/** Generates a key pair off the event loop (libuv thread pool). */
export async function generateKeys(alg: KeyAlgorithm): Promise<PemKeyPair> {
  const enc = {
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  } as const;
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, publicKeyPem: string, privateKeyPem: string): void => {
      if (err) reject(err);
      else resolve({ privateKeyPem, publicKeyPem });
    };
    if (alg === 'ed25519') generateKeyPair('ed25519', enc, done);
    else generateKeyPair('ec', { namedCurve: 'prime256v1', ...enc }, done);
  });
}

/** sha256 hex of a byte string. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Parses a public key a client sent and accepts only the key types mwi issues for:
 * ECDSA P-256 and Ed25519. Anything else is a bad request naming `field`.
 */
export function parseClientPublicKey(pem: unknown, field: string): KeyObject {
  if (typeof pem !== 'string' || pem.length > 4096) {
    throw new MwiError('BAD_REQUEST', 'expected a PEM public key', { field });
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch (cause) {
    throw new MwiError('BAD_REQUEST', 'not a valid PEM public key', { field, cause });
  }
  const type = key.asymmetricKeyType;
  if (type === 'ed25519') return key;
  if (type === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return key;
  throw new MwiError('BAD_REQUEST', `unsupported key type ${type ?? 'unknown'} (expected ECDSA P-256 or Ed25519)`, {
    field,
  });
}

/** The CA pin of a certificate: `sha256:<hex>` of its SubjectPublicKeyInfo, as Teleport prints it. */
export function spkiPin(publicKey: KeyObject): string {
  return `sha256:${sha256Hex(publicKey.export({ type: 'spki', format: 'der' }))}`;
}
