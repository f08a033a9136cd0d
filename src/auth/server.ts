import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LOCAL_ADMIN } from '../api/admin.js';
import { parseAddr } from '../api/client.js';
import { authInfoPath, type AuthInfo } from '../api/local.js';
import type { Bot, Role } from '../api/resources.js';
import { AUTH_SERVER_NAME } from '../api/wire.js';
import { HTTP_STATUS, isMwiError, MwiError } from '../errors.js';
import type { Backend } from '../storage/backend.js';
import { openBackend } from '../storage/open.js';
import { mkdirPrivate, writeFileAtomic } from '../util/fs.js';
import { guardRequests } from '../util/http-guard.js';
import { DEFAULT_HTTP_LIMITS, hardenServer, serverOptions, type HttpLimits } from '../util/http-limits.js';
import { parseTarget } from '../util/http-target.js';
import { createLogger, type Logger } from '../util/log.js';
import { VERSION } from '../version.js';
import { FileAuditLog, type AuditFileOptions, type AuditLog } from './audit.js';
import { SplitAuditLog } from './audit-split.js';
import { DbAuditLog } from './audit-db.js';
import { PostgresBackend } from '../storage/postgres.js';
import { loadAuthorities } from './authorities.js';
import { ResourceCache } from './cache.js';
import { activeLock, openLockCache } from './access.js';
import type { Claims } from './claims.js';
import { callerOf, refuseUnverifiedCertificate } from './connection-identity.js';
import { eventLogger, ObservedAuditLog } from './event-log.js';
import { operatorLock } from './locks.js';
import { auditOperatorRequest, refuseLockedOperator } from './operator-identity.js';
import { checkReadiness, type Readiness } from './readiness.js';
import { AuthMetrics, CONNECTION_LIMIT, NO_ROUTE } from './metrics.js';
import type { AuthContext } from './context.js';
import { sendError, sendJson } from './http.js';
import { issueServerCert, LOCAL_REFRESH_MS, writeAdminIdentity } from './local-identity.js';
import { certNames, loadKeypair, ServingCertificates, type KeypairFiles, type LoadedKeypair } from './tls-keypairs.js';
import { joinHandlers } from './platform.js';
import type { JoinMethodOptions } from '../join/servers.js';
import { Router } from './router.js';
import { openWorkloadContext, type WorkloadIdentityOptions } from './workload-identity/context.js';
import { authRoutes } from './routes.js';
import {
  ConnectionCounter,
  DEFAULT_CONNECTION_LIMITS,
  RateLimiter,
  RefusalSummary,
  sourceKey,
  type ConnectionLimits,
} from './ratelimit.js';

export interface AuthServerOptions {
  dataDir: string;
  /** HOST:PORT; port 0 picks a free port. */
  listen: string;
  clusterName: string;
  /** Storage URL (see openBackend); default SQLite under the data dir. */
  storage?: string | undefined;
  /** Extra DNS names / IPs for the server certificate. */
  tlsSans?: string[];
  /** The join methods' mwi.yaml sections (oidc, kubernetes), as loadAuthConfig parses them. */
  joinMethods?: JoinMethodOptions;
  audit?: AuditFileOptions;
  /** With PostgreSQL storage, how long the audit log in the database keeps events (default a year). */
  auditRetentionMs?: number;
  now?: () => number;
  logger?: Logger;
  /** Time and size bounds per client (defaults: DEFAULT_HTTP_LIMITS); tests shorten them. */
  httpLimits?: Partial<HttpLimits>;
  /** mwi.yaml `connection_limits` (default DEFAULT_CONNECTION_LIMITS); per process. */
  connectionLimits?: ConnectionLimits;
  /**
   * The operator's certificates for the public address (`--tls-cert/--tls-key`, mwi.yaml
   * `https_keypairs`), served to clients that do not ask for AUTH_SERVER_NAME (tls-keypairs.ts).
   */
  httpsKeypairs?: KeypairFiles[];
  /** mwi.yaml `https_keypairs_reload_interval`: how often the files are read again (0: only by reloadCertificates). */
  httpsKeypairsReloadMs?: number;
  /** mwi.yaml `workload_identity`: the SPIFFE trust domain and the JWT issuer URL. */
  workloadIdentity?: WorkloadIdentityOptions;
  /** Where this process's metrics are counted (a new registry if not given): see AuthServer.metrics. */
  metrics?: AuthMetrics;
}

/** Rate and connection limits of one Auth Service process (issue #9, finding 6): see rateLimitKey. */
interface SourceLimits {
  rate: RateLimiter;
  connections: ConnectionCounter;
  refusals: RefusalSummary;
}

/** What is served of the operator's keypairs, to tell a reload that changes nothing. */
function servedText(keypairs: LoadedKeypair[]): string {
  return keypairs.map((k) => k.cert + k.key).join('');
}

/** The PostgreSQL audit log's default retention (mwi.yaml audit.retention_period: 8766h, as Teleport's). */
const AUDIT_RETENTION_MS = 8766 * 3600_000;

/** Longest a RATE_LIMITED answer is held back (see route). */
const MAX_REFUSAL_HOLD_MS = 1000;

/**
 * The bucket a request draws on: none for the local admin identity (on the Auth Service host,
 * short-lived, the way back in); its instance's own for a bot instance that is not locked, and
 * its name's own for an operator identity that is not locked (each is attributable and can be
 * locked, but one must not fill the audit log or the disk either: every operator request writes
 * an admin.request event, so a flood from a stolen identity would rotate the evidence away); the
 * source address's for everyone else, however they authenticated: an output certificate
 * (workloads read those from destinations), the identity of a locked instance, bot or operator,
 * or none.
 */
function rateLimitKey(ctx: AuthContext, claims: Claims | undefined, remote: string): string | undefined {
  if (claims?.kind === 'admin' && claims.user === LOCAL_ADMIN) return undefined;
  if (claims?.kind === 'admin' && operatorLock(ctx, claims.user) === undefined) return `operator:${claims.user}`;
  if (claims?.kind === 'bot' && activeLock(ctx, claims.bot, claims.instance) === undefined)
    return `bot_instance:${claims.instance}`;
  return sourceKey(remote);
}

/** What a RATE_LIMITED answer calls the bucket `key` (see rateLimitKey). */
function bucketName(key: string): string {
  if (key.startsWith('bot_instance:')) return 'bot instance';
  if (key.startsWith('operator:')) return 'operator identity';
  return 'address';
}

/**
 * Opens the storage once, migrates it and creates the cluster's CAs if it has none, then closes
 * it. The process that forks Auth Service workers calls it first, so that the workers find a
 * ready database instead of racing to switch a new SQLite file to WAL, migrate it and create
 * the CAs at the same moment (on a loaded machine one of them could wait past SQLite's busy
 * timeout: "database is locked").
 */
export async function prepareStorage(opts: { dataDir: string; storage?: string | undefined; clusterName: string }) {
  mkdirPrivate(opts.dataDir);
  const backend = await openBackend(opts.storage, opts.dataDir);
  try {
    await loadAuthorities(backend, opts.clusterName);
  } finally {
    await backend.close();
  }
}

/** The Auth Service: join, renew and admin APIs on one TLS 1.3 port. */
export class AuthServer {
  private constructor(
    readonly ctx: AuthContext,
    private readonly server: Server,
    private readonly log: Logger,
    private readonly timers: NodeJS.Timeout[],
    private readonly router: Router,
    private readonly sources: SourceLimits,
    private readonly certs: ServingCertificates,
    private readonly keypairFiles: KeypairFiles[],
    /** This process's metrics (diag.ts serves them on --diag-addr). */
    readonly metrics: AuthMetrics,
  ) {}

  /** Aborted by close(): a purge under way stops between two batches. */
  private readonly closing = new AbortController();

  get caPin(): string {
    return this.ctx.cas.caPin;
  }

  get clusterName(): string {
    return this.ctx.cas.clusterName;
  }

  /** The address actually bound, as HOST:PORT. */
  get address(): string {
    const a = this.server.address() as AddressInfo;
    return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }

  static async start(opts: AuthServerOptions): Promise<AuthServer> {
    const log = opts.logger ?? createLogger('auth');
    const now = opts.now ?? Date.now;
    const { host, port } = parseAddr(opts.listen);
    // bad certificate files are a configuration error, found before anything is created
    const keypairFiles = opts.httpsKeypairs ?? [];
    const keypairs = keypairFiles.map((f) => loadKeypair(f, now()));
    mkdirPrivate(opts.dataDir);
    const metrics = opts.metrics ?? new AuthMetrics();
    // every storage operation is timed (mwi_storage_operation_duration_seconds)
    const opened = await openBackend(opts.storage, opts.dataDir);
    const backend: Backend = metrics.timeBackend(opened);
    let audit: AuditLog | undefined;
    let listening: Server | undefined;
    try {
      const cas = await loadAuthorities(backend, opts.clusterName);
      // refused joins and challenges, the events an anonymous flood causes, rotate on their own
      // each event is also counted (metrics) and, for joins, challenges, renewals and locks,
      // logged with its reason: the operator reads why without reading the audit log
      const events = eventLogger(log);
      // replicas on one PostgreSQL database share its audit log: any of them reads every one's events
      const retentionMs = opts.auditRetentionMs ?? AUDIT_RETENTION_MS;
      audit = new ObservedAuditLog(
        opened instanceof PostgresBackend
          ? new SplitAuditLog(
              new DbAuditLog(opened, { refusals: false, now, retentionMs }),
              new DbAuditLog(opened, { refusals: true, now }),
            )
          : new SplitAuditLog(
              new FileAuditLog(join(opts.dataDir, 'audit', 'events.log'), now, opts.audit),
              new FileAuditLog(join(opts.dataDir, 'audit', 'refusals.log'), now, opts.audit),
            ),
        [(e) => metrics.observeEvent(e), (e) => events.observe(e)],
        () => events.flush(),
      );
      const ctx: AuthContext = {
        backend,
        cas,
        audit,
        now,
        roles: await ResourceCache.open<Role>(backend, '/roles/'),
        bots: await ResourceCache.open<Bot>(backend, '/bots/'),
        locks: await openLockCache(backend),
        methods: joinHandlers(backend, now, opts.joinMethods ?? {}),
        workload: await openWorkloadContext(backend, { ...opts.workloadIdentity, clusterName: cas.clusterName, now }),
      };
      const sans = {
        dns: [AUTH_SERVER_NAME, 'localhost', hostname(), ...(opts.tlsSans ?? []).filter((s) => !/^[\d.:]+$/.test(s))],
        ips: [
          '127.0.0.1',
          '::1',
          ...(/^[\d.:]+$/.test(host) && host !== '0.0.0.0' && host !== '::' ? [host] : []),
          ...(opts.tlsSans ?? []).filter((s) => /^[\d.:]+$/.test(s)),
        ],
      };
      const certs = new ServingCertificates([cas.tlsUser.certPem], await issueServerCert(ctx, sans));
      certs.setOperator(keypairs);
      const limits: HttpLimits = { ...DEFAULT_HTTP_LIMITS, ...opts.httpLimits };
      const server = createServer({
        ...serverOptions(limits),
        ...certs.options(),
        ...(certs.hasOperator ? { SNICallback: certs.sni } : {}),
        requestCert: true,
        // join has no client certificate: each route decides what it needs (connection-identity.ts)
        rejectUnauthorized: false,
        minVersion: 'TLSv1.3',
      });
      server.on('secureConnection', refuseUnverifiedCertificate);
      // slow, half-open and malformed clients are cut off (issue #9, finding 2)
      hardenServer(server, limits, log);
      const conn = opts.connectionLimits ?? DEFAULT_CONNECTION_LIMITS;
      const sources: SourceLimits = {
        rate: new RateLimiter(conn.rates, now),
        connections: new ConnectionCounter(conn.maxConnections),
        // one log line per minute at most, however many are refused; never one audit event each
        refusals: new RefusalSummary(60_000, (refused, n, example) =>
          log.warn('refused requests over connection_limits (this process, last minute at most)', {
            refused,
            sources: n,
            example_source: example,
          }),
        ),
      };
      server.on('connection', (socket: Socket) => {
        const key = sourceKey(socket.remoteAddress ?? '');
        if (!sources.connections.acquire(key)) {
          sources.refusals.add(key);
          metrics.refused(CONNECTION_LIMIT);
          socket.destroy();
          return;
        }
        socket.once('close', () => sources.connections.release(key));
      });
      const publicAddrs = () => certs.publicAddrs((server.address() as AddressInfo).port);
      const router = new Router(authRoutes(ctx, { publicAddrs }), limits.bodyTimeoutMs);
      metrics.init(ctx.methods, router.routeNames());
      const auth = new AuthServer(ctx, server, log, [], router, sources, certs, keypairFiles, metrics);
      // every request goes through the one guard: nothing a request does can end the process
      server.on(
        'request',
        guardRequests((req, res) => auth.route(req, res), log),
      );
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err: NodeJS.ErrnoException) =>
          reject(
            new MwiError('BAD_CONFIG', `cannot listen on ${opts.listen}: ${err.code ?? err.message}`, {
              field: 'listen',
              cause: err,
            }),
          ),
        );
        server.listen(port, host, () => resolve());
      });
      listening = server;
      await writeAdminIdentity(ctx, opts.dataDir);
      const info: AuthInfo = { addr: auth.address, cluster_name: cas.clusterName, ca_pin: cas.caPin };
      writeFileAtomic(authInfoPath(opts.dataDir), JSON.stringify(info, null, 2));
      auth.timers.push(
        setInterval(() => {
          void (async () => {
            certs.setOwn(await issueServerCert(ctx, sans));
            server.setSecureContext(certs.options());
            await writeAdminIdentity(ctx, opts.dataDir);
          })().catch((err) => log.error('refreshing local certificates failed', { error: String(err) }));
        }, LOCAL_REFRESH_MS).unref(),
      );
      // expired instances, used-challenge and replay markers: reads skip them, this frees the space
      auth.timers.push(
        setInterval(
          () => {
            void backend
              .purgeExpired(auth.closing.signal)
              .catch((err) => log.error('purging expired items failed', { error: String(err) }));
          },
          10 * 60 * 1000,
        ).unref(),
      );
      if (opts.httpsKeypairsReloadMs)
        auth.timers.push(setInterval(() => auth.reloadCertificates(true), opts.httpsKeypairsReloadMs).unref());
      auth.lastServed = servedText(keypairs);
      for (const k of keypairs) auth.logKeypair('serving the operator certificate', k);
      audit.emit({ event: 'auth.start', success: true, cluster_name: cas.clusterName, version: VERSION });
      log.info('auth service started', { cluster: cas.clusterName, addr: auth.address, ca_pin: cas.caPin });
      return auth;
    } catch (err) {
      // a start that failed half way serves nothing (the port was already open)
      if (listening) {
        listening.close();
        listening.closeAllConnections();
      }
      await audit?.close();
      await backend.close();
      throw err;
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const start = performance.now();
    const remote = req.socket.remoteAddress ?? '';
    let path = '(unparsed)';
    const matched: { route?: string } = {};
    /** The operator a request with an operator identity speaks as: each use is audited under that name. */
    let operator: string | undefined;
    try {
      const now = this.ctx.now();
      const caller = callerOf(req, now, 'anyone');
      // every caller but the local admin identity draws on a bucket before anything is parsed,
      // read or stored for it (issue #9, finding 6: callers filled the disk): an unlocked bot on
      // its instance's own, an unlocked operator on its name's, anyone else on its address's
      const limitKey = rateLimitKey(this.ctx, caller, remote);
      if (limitKey !== undefined) {
        const refused = this.limitSource(limitKey, res);
        if (refused) {
          // the refusal is held for the Retry-After it announces (at most 1 s): a client that
          // ignores it and loops on kept-alive connections gets one answer per connection per
          // second, so a flood costs the server a few timers, not a TLS record and a request
          // parse each (measured: a 64-connection flood got ~800 answers/s when the hold was
          // only until the next token, and took a third of the legitimate joins' rate)
          await new Promise((r) => setTimeout(r, refused.holdMs).unref());
          throw refused.error;
        }
      }
      if (caller?.kind === 'admin' && caller.user !== LOCAL_ADMIN) {
        operator = caller.user;
        refuseLockedOperator(this.ctx, operator);
      }
      const target = parseTarget(req.url);
      path = target.path;
      sendJson(res, 200, await this.router.dispatch(req, target, remote, now, matched));
      if (operator) auditOperatorRequest(this.ctx, operator, matched.route ?? NO_ROUTE, remote);
    } catch (err) {
      if (operator) auditOperatorRequest(this.ctx, operator, matched.route ?? NO_ROUTE, remote, err);
      if (isMwiError(err) && HTTP_STATUS[err.code] < 500) this.metrics.refused(err.code);
      sendError(res, err, this.log, path);
    } finally {
      this.metrics.request(matched.route ?? NO_ROUTE, (performance.now() - start) / 1000);
    }
  }

  /**
   * What /readyz reports for this process (readiness.ts); not ready once close() began.
   */
  readiness(): Promise<Readiness> {
    return checkReadiness(this.ctx, this.closing.signal.aborted);
  }

  /** The gauges read from state (CA validity, bot instances), refreshed before a scrape. */
  async refreshMetrics(): Promise<void> {
    await this.metrics.refresh(this.ctx.cas, this.ctx.backend, this.ctx.now());
  }

  /**
   * Takes a token from bucket `key` (see rateLimitKey); when it has none, the RATE_LIMITED refusal (429, with
   * Retry-After) and how long to hold it. Refusals are counted, not audited.
   */
  private limitSource(key: string, res: ServerResponse): { error: MwiError; holdMs: number } | undefined {
    const waitMs = this.sources.rate.take(key);
    if (waitMs === 0) return undefined;
    this.sources.refusals.add(key);
    const retryAfterS = Math.max(1, Math.ceil(waitMs / 1000));
    res.setHeader('retry-after', String(retryAfterS));
    return {
      error: new MwiError('RATE_LIMITED', `too many requests from this ${bucketName(key)}; retry later`),
      holdMs: Math.min(retryAfterS * 1000, MAX_REFUSAL_HOLD_MS),
    };
  }

  /**
   * Reads the operator's certificate files again (SIGHUP, https_keypairs_reload_interval) and
   * serves them to new connections. Files that fail the checks of loadKeypair are logged and the
   * certificates served until now are kept. `quiet`: no log line when nothing changed. Returns
   * whether the new files are served.
   */
  reloadCertificates(quiet = false): boolean {
    if (this.keypairFiles.length === 0) return false;
    let next: LoadedKeypair[];
    try {
      next = this.keypairFiles.map((f) => loadKeypair(f, this.ctx.now()));
    } catch (err) {
      this.log.error('the operator certificate was not reloaded; still serving the previous one', {
        error: err instanceof Error ? err.message : String(err),
      });
      return false;
    }
    if (servedText(next) === this.lastServed) {
      if (!quiet) this.log.info('the operator certificate files are unchanged');
      return true;
    }
    this.certs.setOperator(next);
    this.server.setSecureContext(this.certs.options());
    this.lastServed = servedText(next);
    for (const k of next) this.logKeypair('reloaded the operator certificate', k);
    return true;
  }

  /** What reloadCertificates compares the files with. */
  private lastServed = '';

  private logKeypair(message: string, k: LoadedKeypair): void {
    this.log.info(message, {
      file: k.files.certFile,
      names: certNames(k.leaf),
      expires: new Date(k.leaf.validTo).toISOString(),
    });
  }

  /** Stops accepting connections, finishes in-flight requests, closes storage. */
  async close(): Promise<void> {
    this.closing.abort();
    for (const t of this.timers) clearInterval(t);
    this.sources.refusals.flush();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
      setTimeout(() => this.server.closeAllConnections(), 2000).unref();
    });
    this.ctx.roles.close();
    this.ctx.bots.close();
    this.ctx.locks.close();
    this.ctx.workload?.identities.close();
    this.ctx.workload?.authorities.close();
    await this.ctx.audit.close();
    await this.ctx.backend.close();
    this.log.info('auth service stopped');
  }
}
