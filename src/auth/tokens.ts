import { createHmac, randomBytes } from 'node:crypto';
import { sha256Hex } from '../crypto/keys.js';
import { joinMethodInfo } from '../join/catalog.js';
import { TOKEN_ID_FORM } from '../api/admin.js';
import { key } from '../storage/backend.js';
import type { Token } from '../api/resources.js';

/** Stored form of a token: the name of a `token`-method token is replaced by a hash. */
export interface StoredToken extends Token {
  /** sha256 hex of the secret, for `token`-method tokens only. */
  secret_hash?: string;
}

/**
 * Storage id of a token. For methods whose token name is the secret, the id is derived from a
 * hash of it, so the database never holds the secret and listing shows only the id.
 */
export function tokenId(name: string, joinMethod: string): string {
  return joinMethodInfo(joinMethod)?.secretName ? `h-${sha256Hex(name).slice(0, 16)}` : name;
}

export function tokenKey(id: string): string {
  return key('tokens', id);
}

/** A fresh join secret: 128 bits, hex. */
export function newSecret(): string {
  return randomBytes(16).toString('hex');
}

/** The id form (`h-<16 hex>`), reserved: a name of this form is always an id, never a secret. */
export const SECRET_ID = TOKEN_ID_FORM;

/**
 * A keyed fingerprint of a token name a caller sent, for the audit log when the name matches no
 * token: it may be a secret sent with the wrong join method, so it is never logged as is. Keyed,
 * so a reader of the log cannot test guesses offline.
 */
export function tokenFingerprint(macKey: Buffer, name: string): string {
  return `hmac:${createHmac('sha256', macKey).update(`token-name:${name}`).digest('hex').slice(0, 16)}`;
}
