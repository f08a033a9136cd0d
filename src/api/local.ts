import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { splitPemBundle } from '../crypto/pem.js';

// What `mwi start` leaves in its data dir for a tctl on the same machine: where the Auth Service
// listens, and an admin identity to call it with. The Auth Service writes these, tctl reads them.

/** The data dir of `mwi start` and of a local tctl when none is given. */
export const DEFAULT_DATA_DIR = '/var/lib/mwi';

/** The local admin identity (JSON: IdentityFile), 0600. */
export function adminIdentityPath(dataDir: string): string {
  return join(dataDir, 'admin', 'identity.json');
}

/** Where the running Auth Service is (JSON: AuthInfo). */
export function authInfoPath(dataDir: string): string {
  return join(dataDir, 'auth.json');
}

export interface AuthInfo {
  /** HOST:PORT actually bound. */
  addr: string;
  cluster_name: string;
  ca_pin: string;
}

/** The local admin identity file (JSON: cert, key, CA certs). Written 0600. */
export interface IdentityFile {
  cert: string;
  key: string;
  ca_certs: string[];
  cluster_name: string;
  expires: string;
}

/**
 * Reads an identity file: the JSON form `mwi start` writes, or the PEM form of tbot's `identity`
 * output (private key, SSH certificate, TLS certificate, then CA certificates).
 */
export function readIdentityFile(path: string): IdentityFile | undefined {
  if (!existsSync(path)) return undefined;
  const text = readFileSync(path, 'utf8');
  if (text.trimStart().startsWith('{')) return JSON.parse(text) as IdentityFile;
  const key = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----\n?/.exec(text)?.[0];
  const certs = splitPemBundle(text);
  if (!key || certs.length < 2) {
    throw new Error('not an identity file (expected a private key, a certificate and CA certificates)');
  }
  return { key, cert: certs[0]!, ca_certs: certs.slice(1), cluster_name: '', expires: '' };
}
