import { parseWith } from '../util/parse.js';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse } from 'yaml';
import { z } from 'zod';
import { MwiError } from '../errors.js';
import { SERVER_SECTIONS, type JoinMethodOptions } from '../join/servers.js';
import { parseByteSize } from '../util/bytes.js';
import { parseDuration } from '../util/duration.js';
import { DEFAULT_DATA_DIR } from '../api/local.js';
import { AUDIT_MAX_FILES, AUDIT_MAX_SIZE } from './audit.js';
import { DEFAULT_CONNECTION_LIMITS, type ConnectionLimits } from './ratelimit.js';
import type { KeypairFiles } from './tls-keypairs.js';
import { ioReason } from '../util/io-reason.js';
import type { WorkloadIdentityOptions } from './workload-identity/context.js';
import { TRUST_DOMAIN } from './workload-identity/spiffe-id.js';
import { TELEPORT_STORAGE_REFUSED } from '../storage/postgres-teleport.js';

const schema = z
  .object({
    version: z.literal('v1').optional(),
    cluster_name: z
      .string()
      .regex(/^[a-zA-Z0-9][a-zA-Z0-9.-]{0,252}$/, 'expected a DNS-like name')
      .optional(),
    data_dir: z.string().min(1).optional(),
    listen: z.string().min(1).optional(),
    // read by storageSpec (a URL, or Teleport's object form)
    storage: z.unknown().optional(),
    tls_sans: z.array(z.string().min(1)).optional(),
    // Teleport's proxy_service names: the operator's certificate for the public address
    https_keypairs: z
      .array(z.object({ key_file: z.string().min(1), cert_file: z.string().min(1) }).strict())
      .optional(),
    https_keypairs_reload_interval: z
      .string()
      .refine((s) => {
        const ms = parseDuration(s);
        return ms === 0 || (ms !== undefined && ms >= 1000);
      }, 'expected 0s (only on SIGHUP) or a duration of at least 1s, like 1h')
      .optional(),
    // the join methods' own sections (oidc, kubernetes), as their server halves define them
    ...Object.fromEntries(SERVER_SECTIONS.map((s) => [s.key, s.schema])),
    // Teleport's names (teleport.connection_limits): max_connections, rates[].period/average/burst
    connection_limits: z
      .object({
        max_connections: z.number().int().min(0, 'expected 0 (no limit) or more').optional(),
        rates: z
          .array(
            z
              .object({
                period: z.string().refine((s) => (parseDuration(s) ?? 0) > 0, 'expected a duration over 0'),
                average: z.number().int().min(1, 'expected at least 1'),
                burst: z.number().int().min(1, 'expected at least 1'),
              })
              .strict(),
          )
          .optional(),
      })
      .strict()
      .optional(),
    audit: z
      .object({
        max_size: z
          .union([z.number(), z.string()])
          .refine((v) => (parseByteSize(v) ?? 0) >= AUDIT_MIN_SIZE, 'expected a size of at least 64KB, like 100MB')
          .optional(),
        max_files: z.number().int().min(1).max(1000).optional(),
        // the audit log in PostgreSQL (storage postgres://): events older than this are removed
        retention_period: z
          .string()
          .refine((s) => (parseDuration(s) ?? 0) >= 3600_000, 'expected a duration of at least 1h, like 8766h')
          .optional(),
      })
      .strict()
      .optional(),
    // workload identity (SPIFFE): mwi's section; Teleport's trust domain is always the cluster name
    workload_identity: z
      .object({
        trust_domain: z
          .string()
          .regex(TRUST_DOMAIN, 'expected a SPIFFE trust domain: lowercase letters, digits, ".", "-" and "_"')
          .optional(),
        issuer: z
          .string()
          .url()
          .refine(
            (s) => !/^https:\/\/[^/]+\/.+\/$/.test(s),
            'remove the trailing "/": the issuer is compared as a string with the tokens\' iss and the discovery ' +
              'document (https://PUBLIC_NAME/workload-identity)',
          )
          .refine((s) => {
            const u = new URL(s);
            return (
              u.protocol === 'https:' && !u.search && !u.hash && ['', '/', '/workload-identity'].includes(u.pathname)
            );
          }, 'expected https://PUBLIC_NAME/workload-identity (or https://PUBLIC_NAME): JWT consumers fetch its keys over https')
          .optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

/**
 * mwi.yaml `storage`: a URL (sqlite, sqlite:///PATH, memory://, postgres://...), or Teleport's
 * teleport.storage shape for PostgreSQL, `{type: postgresql, conn_string: postgres://...}`.
 */
const STORAGE_OBJECT = z
  .object({
    type: z.enum(['postgresql', 'postgres'], {
      errorMap: () => ({ message: 'expected postgresql (other storage is written as a URL: sqlite:///PATH)' }),
    }),
    conn_string: z.string().regex(/^postgres(ql)?:\/\//, 'expected a postgres:// or postgresql:// URL'),
    ...TELEPORT_STORAGE_REFUSED,
  })
  .strict();

function storageSpec(raw: unknown, file: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  const where = { ...(file ? { file } : {}), path: ['storage'] };
  if (typeof raw === 'object' && raw !== null) return parseWith(STORAGE_OBJECT, raw, where).conn_string;
  return parseWith(z.string({ invalid_type_error: 'expected a URL or {type, conn_string}' }).min(1), raw, where);
}

const TOP_KEYS = Object.keys(schema.shape)
  .filter((k) => k !== 'version')
  .join(', ');

export interface AuthConfig {
  clusterName: string;
  dataDir: string;
  listen: string;
  storage: string | undefined;
  tlsSans: string[];
  /** The operator's certificates for the public address, each naming its flags or mwi.yaml keys. */
  httpsKeypairs: KeypairFiles[];
  /** How often those files are read again; 0: only on SIGHUP. */
  httpsKeypairsReloadMs: number;
  /** The join methods' mwi.yaml sections (oidc, kubernetes) as their server halves parse them, by key. */
  joinMethods: JoinMethodOptions;
  connectionLimits: ConnectionLimits;
  /** Audit log rotation: bytes per file, rotated files kept. */
  audit: { maxSize: number; maxFiles: number };
  /** How long the audit log in PostgreSQL (storage postgres://) keeps events. */
  auditRetentionMs: number;
  /** mwi.yaml `workload_identity`: trust domain (default: the cluster name in lowercase), JWT issuer URL. */
  workloadIdentity: WorkloadIdentityOptions;
}

/** Smallest audit file size accepted: one turn's batch of events is up to 64 KiB. */
const AUDIT_MIN_SIZE = 64 * 1024;

export const DEFAULT_LISTEN = '127.0.0.1:3025';
/** How long the PostgreSQL audit log keeps events by default: a year, as Teleport's does. */
export const AUDIT_RETENTION = '8766h';

/** The join methods' sections of a parsed mwi.yaml, by key. */
function joinMethodOptions(y: JoinMethodOptions): JoinMethodOptions {
  return Object.freeze(Object.fromEntries(SERVER_SECTIONS.map(({ key }) => [key, y[key]])));
}

/** `--tls-cert` with `--tls-key` (both or neither), else mwi.yaml's `https_keypairs`. */
function httpsKeypairs(
  flags: Partial<Record<'tls-cert' | 'tls-key', string>>,
  fromFile: Array<{ key_file: string; cert_file: string }> | undefined,
  file: string | undefined,
): KeypairFiles[] {
  const at = file ? `${file}: ` : '';
  const cert = flags['tls-cert'];
  const key = flags['tls-key'];
  if (cert === undefined && key === undefined)
    return (fromFile ?? []).map((k, i) => ({
      certFile: k.cert_file,
      keyFile: k.key_file,
      certField: `${at}https_keypairs[${i}].cert_file`,
      keyField: `${at}https_keypairs[${i}].key_file`,
    }));
  if (!cert)
    throw new MwiError('BAD_CONFIG', 'needed with --tls-key (the certificate chain file)', { field: '--tls-cert' });
  if (!key) throw new MwiError('BAD_CONFIG', 'needed with --tls-cert (its private key file)', { field: '--tls-key' });
  return [{ certFile: cert, keyFile: key, certField: '--tls-cert', keyField: '--tls-key' }];
}

/** Builds the Auth Service config from mwi.yaml (optional) and flags; flags win. */
export function loadAuthConfig(
  file: string | undefined,
  flags: Partial<Record<'cluster-name' | 'data-dir' | 'listen' | 'storage' | 'tls-cert' | 'tls-key', string>>,
): AuthConfig {
  let raw: unknown = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (cause) {
      throw new MwiError('BAD_CONFIG', `cannot read ${file}: ${ioReason(cause)}`, { field: '--config', cause });
    }
    try {
      raw = parse(text) ?? {};
    } catch (cause) {
      // a file that was read but is not YAML: its first error line names the line and column
      const why = cause instanceof Error ? cause.message.split('\n')[0] : String(cause);
      throw new MwiError('BAD_CONFIG', `${file} is not valid YAML: ${why}`, { cause });
    }
  }
  // without a file, the empty document: the defaults, the join methods' sections included
  const y = parseWith(schema, raw, {
    ...(file ? { file } : {}),
    unknownKey: (at) => `unknown key (expected ${at.length === 0 ? TOP_KEYS : 'one of the documented keys'})`,
  });
  const clusterName = flags['cluster-name'] ?? y.cluster_name ?? hostname();
  if (!/^[a-zA-Z0-9][a-zA-Z0-9.-]{0,252}$/.test(clusterName))
    throw new MwiError('BAD_CONFIG', 'expected a DNS-like name', { field: '--cluster-name' });
  return Object.freeze({
    clusterName,
    dataDir: flags['data-dir'] ?? y.data_dir ?? DEFAULT_DATA_DIR,
    listen: flags.listen ?? y.listen ?? DEFAULT_LISTEN,
    storage: flags.storage ?? storageSpec(y.storage, file),
    tlsSans: y.tls_sans ?? [],
    httpsKeypairs: httpsKeypairs(flags, y.https_keypairs, file),
    httpsKeypairsReloadMs: parseDuration(y.https_keypairs_reload_interval ?? '0s')!,
    joinMethods: joinMethodOptions(y),
    connectionLimits: Object.freeze({
      maxConnections: y.connection_limits?.max_connections ?? DEFAULT_CONNECTION_LIMITS.maxConnections,
      rates:
        y.connection_limits?.rates?.map((r) => ({
          periodMs: parseDuration(r.period)!,
          average: r.average,
          burst: r.burst,
        })) ?? DEFAULT_CONNECTION_LIMITS.rates,
    }),
    audit: {
      maxSize: parseByteSize(y.audit?.max_size) ?? AUDIT_MAX_SIZE,
      maxFiles: y.audit?.max_files ?? AUDIT_MAX_FILES,
    },
    auditRetentionMs: parseDuration(y.audit?.retention_period ?? AUDIT_RETENTION)!,
    workloadIdentity: Object.freeze({
      trustDomain: y.workload_identity?.trust_domain ?? clusterName.toLowerCase(),
      issuer: y.workload_identity?.issuer?.replace(/\/$/, ''),
    }),
  });
}
