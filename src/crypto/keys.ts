import { createHash, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { MwiError } from '../errors.js';
import { isEd25519Key, isP256Point } from './points.js';

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

/** A client's public key as the hot path needs it: the SPKI DER and the raw key bytes. */
export interface ClientKey {
  type: 'ec-p256' | 'ed25519';
  /** SubjectPublicKeyInfo DER, embedded as is in certificates. */
  spki: Buffer;
  /** Ed25519: the 32-byte key; P-256: the 65-byte uncompressed point. */
  raw: Buffer;
}

// fixed DER prefixes of the only two SubjectPublicKeyInfo shapes mwi accepts
const P256_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');
const ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/**
 * Parses a client's PEM public key without building a KeyObject: the SPKI must be exactly an
 * uncompressed P-256 point or an Ed25519 key. Anything else gets parseClientPublicKey's error.
 * The key itself is checked too (a P-256 point on the curve; an Ed25519 key canonical and not of
 * small order): a bad request naming `field` otherwise. The checks cost a few microseconds.
 */
export function parseClientKey(pem: unknown, field: string): ClientKey {
  if (typeof pem === 'string' && pem.length < 1024) {
    const m = /^-----BEGIN PUBLIC KEY-----\r?\n([A-Za-z0-9+/=\r\n]+)-----END PUBLIC KEY-----\s*$/.exec(pem);
    if (m) {
      const der = Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
      if (
        der.length === P256_PREFIX.length + 65 &&
        der.subarray(0, P256_PREFIX.length).equals(P256_PREFIX) &&
        der[P256_PREFIX.length] === 4
      ) {
        const raw = der.subarray(P256_PREFIX.length);
        assertValidKey(isP256Point(raw), field);
        return { type: 'ec-p256', spki: der, raw };
      }
      if (der.length === ED25519_PREFIX.length + 32 && der.subarray(0, ED25519_PREFIX.length).equals(ED25519_PREFIX)) {
        const raw = der.subarray(ED25519_PREFIX.length);
        assertValidKey(isEd25519Key(raw), field);
        return { type: 'ed25519', spki: der, raw };
      }
    }
  }
  // the slow path explains what is wrong, or takes the key from another encoding (a compressed or
  // hybrid point, which OpenSSL may export as it came) to the one form certificates carry
  const key = parseClientPublicKey(pem, field);
  const jwk = key.export({ format: 'jwk' });
  const x = Buffer.from(jwk.x ?? '', 'base64url');
  if (key.asymmetricKeyType === 'ed25519') {
    assertValidKey(isEd25519Key(x), field);
    return { type: 'ed25519', spki: Buffer.concat([ED25519_PREFIX, x]), raw: x };
  }
  const raw = Buffer.concat([Buffer.from([4]), x, Buffer.from(jwk.y ?? '', 'base64url')]);
  assertValidKey(raw.length === 65 && isP256Point(raw), field);
  return { type: 'ec-p256', spki: Buffer.concat([P256_PREFIX, raw]), raw };
}

/**
 * Rule: a key that is not a usable public key (off the curve, small order) is refused where it
 * arrives, never certified; the message says no more than that.
 */
export function assertValidKey(ok: boolean, field: string): void {
  if (!ok)
    throw new MwiError('BAD_REQUEST', 'not a valid public key (not a point of the curve, or of small order)', {
      field,
    });
}

/** The CA pin of a certificate: `sha256:<hex>` of its SubjectPublicKeyInfo, as Teleport prints it. */
export function spkiPin(publicKey: KeyObject): string {
  return `sha256:${sha256Hex(publicKey.export({ type: 'spki', format: 'der' }))}`;
}
