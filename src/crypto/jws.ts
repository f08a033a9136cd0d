import { createHash } from 'node:crypto';
import { MwiError } from '../errors.js';

/** The three parts of a compact JWS, decoded, with the text its signature covers. */
export interface CompactJws {
  header: Buffer;
  payload: Buffer;
  signature: Buffer;
  /** `BASE64URL(header).BASE64URL(payload)`: exactly what the signer signed. */
  signingInput: string;
}

/** Longest compact JWS accepted (platform tokens are a few KiB). */
export const MAX_JWS_LENGTH = 16_384;

const SEGMENT = /^[A-Za-z0-9_-]+$/;

/**
 * Decodes a compact JWS (RFC 7515 §7.1) only if it is in its one canonical spelling: exactly three
 * non-empty segments of unpadded base64url (RFC 7515 §2, RFC 4648 §5), no whitespace, and each
 * segment equal to the re-encoding of its bytes (so the unused low bits of a last character are
 * zero and no length is impossible). Lenient decoders map many texts to one token; anything keyed
 * on the text (replay markers, audit hashes) must see only the canonical one.
 *
 * Throws `MwiError('BAD_REQUEST')` naming `field` for anything else, never another error.
 *
 * @example
 * const { signingInput } = assertCanonicalCompactJws(idToken, 'id_token');
 */
export function assertCanonicalCompactJws(text: unknown, field = 'jws'): CompactJws {
  const refuse = (why: string): never => {
    throw new MwiError('BAD_REQUEST', `not a canonical compact JWS: ${why}`, { field });
  };
  if (typeof text !== 'string') return refuse('not a string');
  if (text.length > MAX_JWS_LENGTH) return refuse(`longer than ${MAX_JWS_LENGTH} characters`);
  const parts = text.split('.');
  if (parts.length !== 3) return refuse(`${parts.length} segments, expected 3`);
  const names = ['header', 'payload', 'signature'] as const;
  const decoded = parts.map((part, i) => {
    if (!SEGMENT.test(part)) return refuse(`the ${names[i]} is not unpadded base64url`);
    const bytes = Buffer.from(part, 'base64url');
    // re-encoding gives back the text only for the canonical spelling (spare bits zero, no stray length)
    if (bytes.toString('base64url') !== part) return refuse(`the ${names[i]} is not canonical base64url`);
    return bytes;
  });
  return { header: decoded[0]!, payload: decoded[1]!, signature: decoded[2]!, signingInput: `${parts[0]}.${parts[1]}` };
}

/**
 * A stable id for what the issuer signed (sha256 hex of the signing input): the same for every
 * signature over the same header and payload, so a re-signed or malleated signature (ECDSA
 * `s` → `n − s`) gives no fresh id.
 */
export function signedContentId(jws: CompactJws): string {
  return createHash('sha256').update(jws.signingInput).digest('hex');
}
