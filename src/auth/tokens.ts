import { createHmac, randomBytes } from 'node:crypto';
import { sha256Hex } from '../crypto/keys.js';
import { joinMethodInfo } from '../join/catalog.js';
import { TOKEN_ID_FORM } from '../api/admin.js';
import { key, type Backend, type Item } from '../storage/backend.js';
import type { Token } from '../api/resources.js';

/** Stored form of a token: the name of a `token`-method token is replaced by a hash. */
export interface StoredToken extends Token {
  /** sha256 hex of the secret, for `token`-method tokens only. */
  secret_hash?: string;
}

/**
 * Storage id of a token. For methods whose token name is the secret, the id is a keyed hash of it
 * (`h-<16 hex>`, HMAC with the cluster's join MAC key), so the database never holds the secret,
 * listing shows only the id, and a reader of `tokens ls` or the audit log cannot test guessed
 * secrets against an id offline.
 */
export function tokenId(name: string, joinMethod: string, macKey: Buffer): string {
  if (!joinMethodInfo(joinMethod)?.secretName) return name;
  return `h-${createHmac('sha256', macKey).update(`token-id:${name}`).digest('hex').slice(0, 16)}`;
}

/**
 * The id a secret-named token had before ids were keyed (an unkeyed SHA-256 prefix). Tokens made
 * then keep it until they are used up or expire: lookups by secret try it after the keyed id.
 */
export function legacyTokenId(name: string): string {
  return `h-${sha256Hex(name).slice(0, 16)}`;
}

/**
 * The stored token a secret names (method `token`): under its keyed id, else under the id such
 * tokens had before ids were keyed. `undefined` when neither exists.
 */
export async function getBySecret(
  backend: Backend,
  secret: string,
  macKey: Buffer,
): Promise<{ id: string; item: Item } | undefined> {
  for (const id of [tokenId(secret, 'token', macKey), legacyTokenId(secret)]) {
    const item = await backend.get(tokenKey(id));
    if (item) return { id, item };
  }
  return undefined;
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
