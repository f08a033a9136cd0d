import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { MwiError } from '../errors.js';
import { ioReason } from '../util/io-reason.js';

/** libpq's sslmode values, weakest first. */
export const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

/**
 * Where and how to connect, as libpq would from the same URL and PG* environment: what the `pg`
 * driver is given. `tls` is false (no TLS), or the TLS options; `fallback` says what libpq's
 * `prefer` (TLS, else plain) or `allow` (plain, else TLS) tries second.
 */
export interface PgTarget {
  host: string;
  port: number;
  user: string;
  database: string;
  password: string | undefined;
  sslmode: SslMode;
  tls: false | ConnectionOptions;
  fallback: false | ConnectionOptions | undefined;
  connectTimeoutMs: number;
  applicationName: string;
  /** Connections the pool keeps at most (`pool_max_conns`, pgx's name, as Teleport's conn_string takes it). */
  poolSize: number;
  /** `postgres://user@host:port/db`: the target without secrets, for logs and errors. */
  display: string;
}

/** The URL parameters mwi reads (libpq's names), and the environment variable of each. */
const PARAMS: Record<string, string | undefined> = {
  host: 'PGHOST',
  port: 'PGPORT',
  dbname: 'PGDATABASE',
  user: 'PGUSER',
  password: 'PGPASSWORD',
  passfile: 'PGPASSFILE',
  sslmode: 'PGSSLMODE',
  sslrootcert: 'PGSSLROOTCERT',
  sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY',
  connect_timeout: 'PGCONNECT_TIMEOUT',
  application_name: 'PGAPPNAME',
  pool_max_conns: undefined,
};

/** Connections per Auth Service process when the URL does not say (`pool_max_conns`), and the most it may say. */
export const DEFAULT_POOL_SIZE = 10;
export const MAX_POOL_SIZE = 100;

/** pgx's other pool parameters, which Teleport's conn_string may carry: what mwi does instead. */
const PGX_POOL_PARAMS = [
  'pool_min_conns',
  'pool_min_idle_conns',
  'pool_max_conn_lifetime',
  'pool_max_conn_lifetime_jitter',
  'pool_max_conn_idle_time',
  'pool_health_check_period',
];

/** Fail fast when the server is unreachable (libpq waits forever by default). */
export const DEFAULT_CONNECT_TIMEOUT_S = 5;
/** Debian's libpq default: the local server's socket directory. */
const DEFAULT_SOCKET_DIR = '/var/run/postgresql';

function bad(message: string, cause?: unknown): MwiError {
  return new MwiError('BAD_CONFIG', message, { field: 'storage', ...(cause ? { cause } : {}) });
}

/**
 * A part of `spec` as an error may quote it: never text from before the URL's last `@`, which may
 * be the password (even where a `/`, `?` or `#` in it, not percent-encoded, ends the user-info
 * early and makes it look like a host or a parameter).
 */
type Show = (part: string) => string;

function shower(spec: string): Show {
  const at = spec.lastIndexOf('@');
  return (part) => {
    const pos = spec.indexOf(part);
    if (at >= 0 && (pos < 0 || pos <= at))
      return (
        '(not shown: it is part of the user name and password; a "/", "?", "#" or "@" in them must be ' +
        'written %2F, %3F, %23 or %40)'
      );
    return JSON.stringify(part);
  };
}

/** `a=b&c=d` with libpq's decoding: percent-escapes only (a `+` stays a `+`). */
function queryParams(query: string, show: Show): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of query.split('&').filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq < 0) throw bad(`PostgreSQL URL parameter ${show(part)} has no value (expected NAME=VALUE)`);
    const name = decode(part.slice(0, eq), show);
    if (PGX_POOL_PARAMS.includes(name))
      throw bad(
        `PostgreSQL URL parameter ${JSON.stringify(name)} is not supported: mwi reads pool_max_conns only (its ` +
          'connections live until the database or the network ends them, and a broken one is replaced on next use)',
      );
    if (!(name in PARAMS))
      throw bad(`unknown PostgreSQL URL parameter ${show(name)} (mwi reads ${Object.keys(PARAMS).join(', ')})`);
    out.set(name, decode(part.slice(eq + 1), name === 'password' ? () => 'the password (not shown)' : show));
  }
  return out;
}

function decode(s: string, show: Show): string {
  try {
    return decodeURIComponent(s);
  } catch (cause) {
    throw bad(`invalid percent-encoding in the PostgreSQL URL near ${show(s)}`, cause);
  }
}

/** `postgres://` and `postgresql://`, as libpq accepts them. */
export function isPostgresUrl(spec: string): boolean {
  return /^postgres(ql)?:\/\//.test(spec);
}

/** Splits `postgresql://[user[:password]@][host][:port][/dbname][?params]` (libpq's URI form). */
function splitUrl(spec: string): Map<string, string> {
  const show = shower(spec);
  const m = /^postgres(?:ql)?:\/\/([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?(#.*)?$/.exec(spec);
  if (!m) throw bad('expected postgres://[USER[:PASSWORD]@][HOST][:PORT][/DBNAME][?PARAM=VALUE&...]');
  if (m[4])
    throw bad(
      spec.lastIndexOf('@') > spec.indexOf('#')
        ? `a "#" in the user name or password must be written %23 (a PostgreSQL URL has no #fragment)`
        : 'a PostgreSQL URL has no #fragment: put parameters after ?',
    );
  const out = queryParams(m[3] ?? '', show);
  const authority = m[1]!;
  const at = authority.lastIndexOf('@');
  if (at >= 0) {
    const cred = authority.slice(0, at);
    const colon = cred.indexOf(':');
    const user = decode(colon < 0 ? cred : cred.slice(0, colon), show);
    if (user) out.set('user', out.get('user') ?? user);
    if (colon >= 0) out.set('password', out.get('password') ?? decode(cred.slice(colon + 1), show));
  }
  const hostPort = authority.slice(at + 1);
  if (hostPort.includes(','))
    throw bad(
      'several hosts in one PostgreSQL URL are not supported: give the address of the primary (a DNS name or a ' +
        'load balancer that follows failover)',
    );
  const hp = /^(\[[^\]]*\]|[^:]*)(?::(\d*))?$/.exec(hostPort);
  if (!hp) throw bad(`invalid host and port ${show(hostPort)} in the PostgreSQL URL`);
  const host = decode(hp[1]!.replace(/^\[(.*)\]$/, '$1'), show);
  if (host) out.set('host', out.get('host') ?? host);
  if (hp[2]) out.set('port', out.get('port') ?? hp[2]);
  const db = m[2] ? decode(m[2].slice(1), show) : '';
  if (db) out.set('dbname', out.get('dbname') ?? db);
  return out;
}

function readPem(path: string, param: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (cause) {
    throw bad(`${param}: cannot read ${path}: ${ioReason(cause)}`, cause);
  }
}

/** libpq refuses a key file others can read (0600, or 0640 owned by root). */
function checkPrivate(path: string, param: string, what: string): void {
  let st;
  try {
    st = statSync(path);
  } catch (cause) {
    throw bad(`${param}: cannot read ${path}: ${ioReason(cause)}`, cause);
  }
  const loose = st.uid === 0 ? st.mode & 0o037 : st.mode & 0o077;
  if (loose)
    throw bad(
      `${param}: ${path} gives group or other users access (mode ${(st.mode & 0o777).toString(8)}): ${what} must ` +
        'be private (chmod 600), as libpq requires',
    );
}

/**
 * The password for host/port/db/user from a libpq password file (`hostname:port:database:username:password`,
 * `*` matching anything, `\` escaping `:` and `\`), or undefined.
 */
export function lookupPassFile(text: string, want: { host: string; port: number; database: string; user: string }) {
  const wanted = [want.host, String(want.port), want.database, want.user];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (!line || line.startsWith('#')) continue;
    const fields: string[] = [];
    let cur = '';
    for (let i = 0; i < line.length; i++) {
      const c = line[i]!;
      if (c === '\\' && i + 1 < line.length) cur += line[++i];
      else if (c === ':' && fields.length < 4) {
        fields.push(cur);
        cur = '';
      } else cur += c;
    }
    fields.push(cur);
    if (fields.length < 5) continue;
    if (wanted.every((w, i) => fields[i] === '*' || fields[i] === w)) return fields[4];
  }
  return undefined;
}

/**
 * Reads a `postgres://` storage URL the way libpq reads a connection URI: parameters in the URL,
 * else the PG* environment variables, else libpq's defaults (the local socket directory, port 5432,
 * the OS user, a database named like the user, sslmode `prefer`, `~/.postgresql/root.crt` and
 * `postgresql.{crt,key}`, `~/.pgpass`). Files named by it are read now, so that a missing or
 * unreadable one is a BAD_CONFIG naming the parameter before anything connects.
 */
export function parsePostgresUrl(spec: string, env: NodeJS.ProcessEnv = process.env): PgTarget {
  const url = splitUrl(spec);
  const get = (name: string): string | undefined => {
    const v = url.get(name);
    if (v !== undefined && v !== '') return v;
    const e = PARAMS[name] && env[PARAMS[name]];
    return e ? e : undefined;
  };
  const home = env.HOME ?? homedir();
  const host = get('host') ?? (existsDir(DEFAULT_SOCKET_DIR) ? DEFAULT_SOCKET_DIR : 'localhost');
  const portText = get('port') ?? '5432';
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 1 || port > 65535)
    throw bad(`invalid PostgreSQL port ${JSON.stringify(portText)} (expected 1 to 65535)`);
  const user = get('user') ?? userInfo().username;
  const database = get('dbname') ?? user;
  const rootParam = get('sslrootcert');
  const modeGiven = get('sslmode');
  // libpq: sslrootcert=system makes verify-full the default, and refuses a weaker mode
  const modeText = modeGiven ?? (rootParam === 'system' ? 'verify-full' : 'prefer');
  if (!(SSL_MODES as readonly string[]).includes(modeText))
    throw bad(`invalid sslmode ${JSON.stringify(modeText)} (expected ${SSL_MODES.join(', ')})`);
  const sslmode = modeText as SslMode;
  if (rootParam === 'system' && sslmode !== 'verify-full')
    throw bad(`sslrootcert=system needs sslmode=verify-full (it is ${sslmode}), as libpq requires`);
  const timeoutText = get('connect_timeout') ?? String(DEFAULT_CONNECT_TIMEOUT_S);
  if (!/^\d+$/.test(timeoutText))
    throw bad(`invalid connect_timeout ${JSON.stringify(timeoutText)} (expected whole seconds)`);
  // libpq: 0 waits forever; mwi keeps its promise to fail fast, and a value under 2 s means 2 s
  const connectTimeoutMs =
    (Number(timeoutText) === 0 ? DEFAULT_CONNECT_TIMEOUT_S : Math.max(2, Number(timeoutText))) * 1000;
  const socket = host.startsWith('/');

  // TLS, as libpq decides it: the root certificate makes `require` verify the chain too
  const defaultRoot = join(home, '.postgresql', 'root.crt');
  const rootFile = rootParam ?? (existsFile(defaultRoot) ? defaultRoot : undefined);
  let tls: false | ConnectionOptions = false;
  if (!socket && sslmode !== 'disable') {
    const verify = sslmode === 'verify-ca' || sslmode === 'verify-full' || (sslmode === 'require' && !!rootFile);
    tls = { rejectUnauthorized: verify };
    if (verify) {
      if (!rootFile)
        throw bad(
          `sslmode=${sslmode} needs the CA certificate that signed the server's: sslrootcert=FILE (or ` +
            `PGSSLROOTCERT, or ${defaultRoot}), or sslrootcert=system for a publicly trusted server certificate`,
        );
      if (rootFile !== 'system') tls.ca = readPem(rootFile, 'sslrootcert');
      // verify-ca checks the chain only; verify-full also the host name (Node's default check)
      if (sslmode !== 'verify-full') tls.checkServerIdentity = () => undefined;
      else if (!isIP(host)) tls.servername = host;
    }
    const certParam = get('sslcert');
    const keyParam = get('sslkey');
    const certFile = certParam ?? existingFile(join(home, '.postgresql', 'postgresql.crt'));
    if (keyParam && !certFile) throw bad('sslkey needs sslcert (the client certificate it belongs to)');
    if (certFile) {
      const keyFile = keyParam ?? join(home, '.postgresql', 'postgresql.key');
      tls.cert = readPem(certFile, 'sslcert');
      checkPrivate(keyFile, 'sslkey', 'a client key');
      tls.key = readPem(keyFile, 'sslkey');
    }
  }
  // libpq's prefer is TLS then plain; allow plain then TLS (neither verifies the server)
  let fallback: PgTarget['fallback'];
  if (sslmode === 'prefer' && tls) fallback = false;
  if (sslmode === 'allow' && tls) {
    fallback = tls;
    tls = false;
  }

  let password = get('password');
  if (password === undefined) {
    const passParam = get('passfile');
    const passFile = passParam ?? join(home, '.pgpass');
    if (passParam || existsFile(passFile)) {
      checkPrivate(passFile, 'passfile', 'a password file');
      const text = readPem(passFile, 'passfile');
      // libpq matches a socket connection to the default directory under "localhost"
      const matchHost = socket && host === DEFAULT_SOCKET_DIR ? 'localhost' : host;
      password = lookupPassFile(text, { host: matchHost, port, database, user });
    }
  }
  const poolText = get('pool_max_conns') ?? String(DEFAULT_POOL_SIZE);
  const poolSize = Number(poolText);
  if (!/^\d+$/.test(poolText) || poolSize < 1 || poolSize > MAX_POOL_SIZE)
    throw bad(`invalid pool_max_conns ${JSON.stringify(poolText)} (expected 1 to ${MAX_POOL_SIZE})`);
  const display = `postgres://${user}@${socket ? `[${host}]` : isIP(host) === 6 ? `[${host}]` : host}:${port}/${database}`;
  return Object.freeze({
    host,
    port,
    user,
    database,
    password,
    sslmode,
    tls,
    fallback,
    connectTimeoutMs,
    applicationName: get('application_name') ?? 'mwi',
    poolSize,
    display,
  });
}

function existsFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function existingFile(p: string): string | undefined {
  return existsFile(p) ? p : undefined;
}

function existsDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}
