import pg from 'pg';
import type { ConnectionOptions } from 'node:tls';
import { MwiError } from '../errors.js';
import type { PgTarget } from './postgres-url.js';

/**
 * Bounds that keep a request from hanging on a database that is down or cut off: the server ends
 * a statement after STATEMENT_TIMEOUT_MS, the driver gives up waiting for an answer after
 * QUERY_TIMEOUT_MS (a server that vanished without closing the connection), and a connection
 * (or a free one from the pool) is waited for `connect_timeout` at most (postgres-url.ts).
 */
export const STATEMENT_TIMEOUT_MS = 5000;
export const QUERY_TIMEOUT_MS = 8000;
/**
 * A write transaction holds the revision counter's row lock, which every replica's writes wait
 * for, between its two round trips: a replica paused there (a VM pause, a long GC, a partition
 * without a reset) has its transaction ended by the server after this long, not 16 s.
 */
export const IDLE_IN_TRANSACTION_MS = 2000;

/** bigint columns (revisions, epoch ms) as numbers: every value mwi stores is below 2^53. */
const INT8_OID = 20;
const types = {
  getTypeParser: ((oid: number, format?: string): unknown =>
    oid === INT8_OID
      ? (v: string) => Number(v)
      : (pg.types.getTypeParser(oid, format as 'text') as unknown)) as typeof pg.types.getTypeParser,
};

/** How a connection reaches `t`: its server, user and database, TLS as `ssl`, `connect_timeout`, keepalive. */
export function connectionConfig(t: PgTarget, ssl: false | ConnectionOptions): pg.ClientConfig {
  return {
    host: t.host,
    port: t.port,
    user: t.user,
    database: t.database,
    ...(t.password !== undefined ? { password: t.password } : {}),
    ssl,
    connectionTimeoutMillis: t.connectTimeoutMs,
    keepAlive: true,
  };
}

function poolFor(t: PgTarget, ssl: false | ConnectionOptions): pg.Pool {
  const pool = new pg.Pool({
    ...connectionConfig(t, ssl),
    application_name: t.applicationName,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    query_timeout: QUERY_TIMEOUT_MS,
    idle_in_transaction_session_timeout: IDLE_IN_TRANSACTION_MS,
    max: t.poolSize,
    idleTimeoutMillis: 30_000,
    types,
  });
  // an idle connection the server ended (a restart, a failover): the pool drops it and the next
  // query opens a new one; an unhandled 'error' event would end the process
  pool.on('error', () => {});
  // the same for a connection in use (between two queries of a transaction) when the server ends
  // it: the driver emits 'error' on the client, which without a listener would end the process;
  // the query in flight, or the next one, fails with the reason, and the connection is dropped
  pool.on('connect', (client) => client.on('error', () => {}));
  return pool;
}

/** What failed, in words a user can act on. */
function reason(err: unknown, user: string): string {
  const e = err as { code?: string; message?: string } | undefined;
  const msg = e?.message ?? String(err);
  const code = e?.code ?? '';
  if (code === 'ECONNREFUSED') return 'connection refused (ECONNREFUSED): is PostgreSQL running and listening there?';
  if (code === 'ENOTFOUND') return 'the host name does not resolve (ENOTFOUND)';
  // the driver's words when the server asks for a password and none was found
  if (/client password must be a string/.test(msg))
    return `no password for ${user}: give it in the URL, PGPASSWORD or a passfile`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return `${msg} (${code}): the host in the URL must be a name the server's certificate carries`;
  if (/CERT|ISSUER|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code))
    return `${msg} (${code}): the server's certificate is not signed by the CA in sslrootcert`;
  // SQLSTATEs are five characters (28P01, 57P01); Node's codes are words (ECONNRESET)
  if (/^[0-9A-Z]{5}$/.test(code) && !/^E[A-Z]+$/.test(code)) return `${msg} (SQLSTATE ${code})`;
  if (code) return `${msg.replace(/^.*?: /, '')} (${code})`;
  return msg;
}

/** A text[] literal (pg's escapeLiteral quotes each value as libpq does). */
export function texts(values: string[]): string {
  return `ARRAY[${values.map((v) => pg.escapeLiteral(v)).join(',')}]::text[]`;
}

/** A number checked to be one before it is written into a statement. */
export function int(n: number): string {
  if (!Number.isFinite(n)) throw new TypeError(`not a number: ${n}`);
  return String(Math.trunc(n));
}

export function bools(values: boolean[]): string {
  return `ARRAY[${values.map((v) => String(v === true)).join(',')}]::boolean[]`;
}

export function ints(values: Array<number | undefined>): string {
  return `ARRAY[${values.map((v) => (v === undefined ? 'NULL' : int(v))).join(',')}]::bigint[]`;
}

/** Serialization failures and deadlocks: the transaction was rolled back and may be run again. */
export function isRetryable(err: unknown): boolean {
  const code = (err as { code?: string } | undefined)?.code;
  return code === '40001' || code === '40P01';
}

/**
 * The database could not be reached, or the connection broke: the operation did not complete
 * (or, for a COMMIT, may have). Connection exceptions (08xxx), the server shutting down or
 * starting (57P0x), socket errors and the driver's own timeouts.
 */
export function isConnectionError(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | undefined;
  if (!e) return false;
  if (e.code && (/^08/.test(e.code) || /^57P0/.test(e.code))) return true;
  if (e.code && /^E[A-Z]+$/.test(e.code)) return true;
  return /Connection terminated|timeout exceeded when trying to connect|Query read timeout|not queryable/i.test(
    e.message ?? '',
  );
}

/**
 * A driver error as mwi's STORAGE error. At startup (`startup`) the message names the database
 * (never its password) and why: the operator reads it. At run time the message, which reaches
 * API clients, says only what kind of failure it was; which database and why go in `detail`, for
 * the log line of the request (sendError logs it with the request id).
 */
export function storageError(err: unknown, t: PgTarget, what = 'storage', startup = false): MwiError {
  if (err instanceof MwiError) return err;
  const down = isConnectionError(err);
  const timedOut = (err as { code?: string } | undefined)?.code === '57014';
  const detail = timedOut
    ? `PostgreSQL at ${t.display} did not answer within ${STATEMENT_TIMEOUT_MS / 1000}s`
    : `PostgreSQL at ${t.display}: ${reason(err, t.user)}`;
  const kind = down ? `${what} unavailable` : `${what} failed`;
  if (startup) return new MwiError('STORAGE', `${kind}: ${detail}`, { cause: err });
  const summary = down
    ? 'the database is unreachable'
    : timedOut
      ? 'the database did not answer in time'
      : 'database error';
  return new MwiError('STORAGE', `${kind} (${summary})`, { detail, cause: err });
}

/**
 * A pool for `t` that has connected once. libpq's `prefer` (TLS, else plain) and `allow` (plain,
 * else TLS) are decided here, on that first connection, and kept for the pool.
 */
export async function openPool(t: PgTarget): Promise<pg.Pool> {
  let pool = poolFor(t, t.tls);
  try {
    (await pool.connect()).release();
    return pool;
  } catch (err) {
    await pool.end().catch(() => {});
    const msg = (err as Error).message ?? '';
    const noTls = /does not support SSL/i.test(msg);
    const refusedPlain = (err as { code?: string }).code === '28000';
    if (t.fallback !== undefined && ((t.fallback === false && noTls) || (t.fallback !== false && refusedPlain))) {
      pool = poolFor(t, t.fallback);
      try {
        (await pool.connect()).release();
        return pool;
      } catch (again) {
        await pool.end().catch(() => {});
        throw storageError(again, t, 'storage', true);
      }
    }
    if (noTls)
      throw new MwiError(
        'STORAGE',
        `storage unavailable: PostgreSQL at ${t.display} does not accept TLS, which sslmode=${t.sslmode} requires: ` +
          'enable ssl on the server (or, on a trusted network only, sslmode=prefer or disable)',
        { cause: err },
      );
    throw storageError(err, t, 'storage', true);
  }
}
