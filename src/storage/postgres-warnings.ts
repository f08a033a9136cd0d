import { existsSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { isPostgresUrl, parsePostgresUrl, SSL_MODES } from './postgres-url.js';

/** Whether a storage URL carries a password itself (in its user-info or a `password` parameter). */
export function urlHasPassword(spec: string): boolean {
  const userInfo = /^postgres(?:ql)?:\/\/([^@]*)@/.exec(spec)?.[1];
  return (!!userInfo && !/[/?#]/.test(userInfo) && userInfo.includes(':')) || /[?&]password=[^&]/.test(spec);
}

function isLoopback(host: string): boolean {
  if (host === 'localhost' || host.startsWith('/')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

export interface StorageWarningInput {
  /** The storage URL mwi start uses. */
  storage: string | undefined;
  /** It came from `--storage` (on the command line, where `ps` shows it), not from mwi.yaml. */
  fromFlag: boolean;
  /** The mwi.yaml read, if any. */
  configFile: string | undefined;
  dataDir: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * What mwi start warns about, once, before it serves on PostgreSQL: each a line for stderr. The
 * database holds the CA keys, so a path to it that others can read or intercept is worth a word;
 * none of these stops the start (an unreadable or malformed URL is the start's own error).
 */
export function storageWarnings(input: StorageWarningInput): string[] {
  const spec = input.storage;
  if (!spec || !isPostgresUrl(spec)) return [];
  let t;
  try {
    t = parsePostgresUrl(spec, input.env);
  } catch {
    return [];
  }
  const out: string[] = [];
  const verifyFull = SSL_MODES.indexOf('verify-full');
  if (!isLoopback(t.host) && SSL_MODES.indexOf(t.sslmode) < verifyFull)
    out.push(
      `storage ${t.display}: sslmode=${t.sslmode} does not check the server's certificate and name; the database ` +
        "holds the CA keys: use sslmode=verify-full with sslrootcert=FILE (the CA of the server's certificate)",
    );
  if (urlHasPassword(spec)) {
    if (input.fromFlag)
      out.push(
        '--storage: the URL carries a password, which every user of this host can read (ps, /proc/PID/cmdline): ' +
          'give it in a password file (passfile=FILE, mode 0600) or PGPASSWORD instead',
      );
    else if (input.configFile) {
      // the rule a passfile is held to (postgres-url.ts, libpq's): 0600, or 0640 owned by root
      const st = statOf(input.configFile);
      if (st && (st.uid === 0 ? st.mode & 0o037 : st.mode & 0o077))
        out.push(
          `${input.configFile}: its storage URL carries a password and the file is readable by group or others ` +
            `(mode ${(st.mode & 0o777).toString(8)}): chmod 600 it (640 if root owns it and mwi reads it as ` +
            'its group), or move the password to a passfile, which is held to the same rule',
        );
    }
  }
  const db = join(input.dataDir, 'mwi.db');
  if (existsSync(db))
    out.push(
      `${db} is still here while the storage is ${t.display}: it holds a copy of the CA keys (from before the ` +
        'move to PostgreSQL). Archive it somewhere safe, or delete it; never start mwi on it again',
    );
  return out;
}

/** `sslrootcert`, `sslcert`, `sslkey` and `passfile` given as relative paths in a storage URL. */
export function relativeFileParams(spec: string | undefined): string[] {
  if (!spec || !isPostgresUrl(spec)) return [];
  const query = spec.split('#')[0]!.split('?')[1] ?? '';
  const out: string[] = [];
  for (const part of query.split('&')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq);
    let value = part.slice(eq + 1);
    try {
      value = decodeURIComponent(value);
    } catch {
      // the start reports it
    }
    if (['sslrootcert', 'sslcert', 'sslkey', 'passfile'].includes(name) && value && value !== 'system')
      if (!value.startsWith('/')) out.push(`${name}=${value}`);
  }
  return out;
}

function statOf(p: string): { mode: number; uid: number } | undefined {
  try {
    return statSync(p);
  } catch {
    return undefined;
  }
}
