import { isIP } from 'node:net';
import { z } from 'zod';
import { hostPrincipalProblem, LOCAL_ADMIN, type SignDbReply, type SignDbRequest } from '../api/admin.js';
import { DB_IDENTIFIER, type Bot, type Role } from '../api/resources.js';
import type { DatabaseCertResponse } from '../api/wire.js';
import { parseClientKey } from '../crypto/keys.js';
import { issueCertificate } from '../crypto/x509.js';
import { MwiError } from '../errors.js';
import { parseDuration } from '../util/duration.js';
import type { AuthContext } from './context.js';
import { outputCertHandler } from './output-certs.js';

const IDENT_MESSAGE =
  'expected a database identifier: letters, digits, "_", ".", "@", "$", "-", at most 63 (no "/", "=", "," or spaces)';
const ident = z.string({ message: IDENT_MESSAGE }).regex(DB_IDENTIFIER, IDENT_MESSAGE);

const request = z.object({
  public_key: z.string({ message: 'expected a PEM public key' }),
  service: z.string().min(1, 'expected the database service name').max(128, 'at most 128 characters'),
  username: ident,
  database: ident.optional(),
  ttl_seconds: z.number().optional(),
});

/** One role field's values, with `{{internal.NAME}}` expanded from the bot's traits. */
function grants(roles: Role[], part: 'allow' | 'deny', field: 'db_users' | 'db_names', bot: Bot): Set<string> {
  const out = new Set<string>();
  for (const role of roles) {
    for (const v of role.spec[part][field] ?? []) {
      const m = /^\{\{\s*internal\.([a-zA-Z0-9_]+)\s*\}\}$/.exec(v);
      if (!m) out.add(v);
      // trait values are not checked when a bot is created: only identifiers become grants
      else
        for (const t of bot.spec.traits.find((x) => x.name === m[1])?.values ?? [])
          if (DB_IDENTIFIER.test(t)) out.add(t);
    }
  }
  return out;
}

/** Whether the roles grant `value` in `field` (Teleport's: `*` is any; a deny wins). */
function granted(roles: Role[], bot: Bot, field: 'db_users' | 'db_names', value: string): boolean {
  const deny = grants(roles, 'deny', field, bot);
  if (deny.has('*') || deny.has(value)) return false;
  const allow = grants(roles, 'allow', field, bot);
  return allow.has('*') || allow.has(value);
}

/**
 * Refuses a database user or name the bot's roles do not grant (BAD_REQUEST naming the field, so
 * that the bot keeps its other outputs while the roles or the configuration are fixed). The
 * database check only limits what tbot may ask for: the certificate names the user alone, and
 * PostgreSQL lets it open any database pg_hba.conf and CONNECT grants allow.
 */
export function checkDatabaseAccess(roles: Role[], bot: Bot, username: string, database?: string): void {
  if (!granted(roles, bot, 'db_users', username))
    throw new MwiError(
      'BAD_REQUEST',
      `the bot's roles do not grant database user ${JSON.stringify(username)}: add it to allow.db_users of one of ` +
        'its roles',
      { field: 'username' },
    );
  if (database !== undefined && !granted(roles, bot, 'db_names', database))
    throw new MwiError(
      'BAD_REQUEST',
      `the bot's roles do not grant database ${JSON.stringify(database)}: add it to allow.db_names of one of its roles`,
      { field: 'database' },
    );
}

/**
 * POST /v1/certs/database: a client certificate for a key tbot generated, subject CN = the
 * database user, signed by the db-client CA, with the bot's certificate TTL rules; audited as
 * bot.certs with `output: database`, the serial, the service, user and the database asked for
 * (`db_name_requested`: the certificate does not carry it, so nothing enforces it but the server).
 */
export const handleDatabaseCert = outputCertHandler<z.infer<typeof request>, DatabaseCertResponse>({
  schema: request,
  output: 'database',
  async issue({ ctx, req, publicKey, access, ttlMs }) {
    checkDatabaseAccess(access.roles, access.bot, req.username, req.database);
    const tls = await issueCertificate({
      ca: ctx.cas.dbClient,
      publicKey: publicKey.spki,
      // PostgreSQL's cert authentication compares the CN with the role it logs in as
      commonName: req.username,
      ttlMs,
      usage: 'client',
      now: ctx.now(),
    });
    return {
      audit: {
        tls_serial: tls.serial,
        service: req.service,
        db_user: req.username,
        // asked for, not granted: the certificate names only the user (PostgreSQL reads only the CN)
        ...(req.database !== undefined ? { db_name_requested: req.database } : {}),
      },
      expires: tls.notAfter,
      reply: {
        tls_cert: tls.certPem,
        tls_ca_certs: [ctx.cas.db.certPem],
        expires: tls.notAfter.toISOString(),
        cluster_name: ctx.cas.clusterName,
      },
    };
  },
});

/** Teleport's example lifetime of a database server certificate (`--ttl=2190h`), and mwi's cap. */
const DB_SERVER_DEFAULT_TTL_MS = 2190 * 3600 * 1000;
const DB_SERVER_MAX_TTL_MS = 365 * 24 * 3600 * 1000;

/**
 * POST sign/db (tctl auth sign --format db): a database server certificate for `hosts`, signed by
 * the cluster's db CA (what the database output's tls.cas holds, so clients verify the server
 * with sslmode=verify-full), and the db-client CA for the server's ssl_ca_file. Only the local
 * admin identity, as sign/host: the certificate lives long and no lock revokes it.
 */
export async function signDbServer(ctx: AuthContext, body: SignDbRequest, user: string): Promise<SignDbReply> {
  if (user !== LOCAL_ADMIN)
    throw new MwiError(
      'ACCESS_DENIED',
      'an operator identity cannot sign database server certificates (they last long and no lock revokes them): ' +
        'run tctl auth sign --format db on the Auth Service host, with its local admin identity',
    );
  const publicKey = parseClientKey(body.public_key, 'public_key');
  const hosts = body.hosts.filter(Boolean);
  if (hosts.length === 0) throw new MwiError('BAD_REQUEST', 'expected at least one host name', { field: 'host' });
  for (const h of hosts) {
    const problem = hostPrincipalProblem(h);
    if (problem) throw new MwiError('BAD_REQUEST', problem, { field: 'host' });
  }
  let ttlMs = DB_SERVER_DEFAULT_TTL_MS;
  if (body.ttl !== undefined) {
    const ms = parseDuration(body.ttl);
    if (ms === undefined || ms <= 0)
      throw new MwiError('BAD_REQUEST', 'expected a duration such as 2190h', { field: 'ttl' });
    ttlMs = Math.min(ms, DB_SERVER_MAX_TTL_MS);
  }
  const tls = await issueCertificate({
    ca: ctx.cas.db,
    publicKey: publicKey.spki,
    commonName: hosts[0]!,
    ttlMs,
    usage: 'server',
    dnsNames: hosts.filter((h) => isIP(h) === 0),
    ipAddresses: hosts.filter((h) => isIP(h) !== 0),
    now: ctx.now(),
  });
  ctx.audit.emit({ event: 'resource.created', success: true, resource: `db_server_cert/${hosts[0]}`, user });
  return { cert: tls.certPem, client_ca: ctx.cas.dbClient.certPem, expires: tls.notAfter.toISOString() };
}
