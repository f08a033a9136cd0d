import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { parseAddr } from '../api/client.js';
import { AUTH_SERVER_NAME, PATHS } from '../api/wire.js';
import { MwiError } from '../errors.js';
import type { Backend } from '../storage/backend.js';
import { openBackend } from '../storage/open.js';
import { mkdirPrivate, writeFileAtomic } from '../util/fs.js';
import { guardRequests } from '../util/http-guard.js';
import { DEFAULT_HTTP_LIMITS, hardenServer, serverOptions, type HttpLimits } from '../util/http-limits.js';
import { decodeSegment, parseTarget, type RequestTarget } from '../util/http-target.js';
import { createLogger, type Logger } from '../util/log.js';
import { VERSION } from '../version.js';
import { AdminApi } from './admin.js';
import { FileAuditLog, type AuditFileOptions, type AuditLog } from './audit.js';
import { SplitAuditLog } from './audit-split.js';
import { loadAuthorities } from './authorities.js';
import { ResourceCache } from './cache.js';
import { activeLock, openLockCache } from './access.js';
import type { Claims } from './claims.js';
import type { AuthContext } from './context.js';
import { carryIdentity, peerClaims, readJson, sendError, sendJson } from './http.js';
import { handleChallenge, handleJoin } from './join.js';
import { authInfoPath, issueServerCert, LOCAL_REFRESH_MS, writeAdminIdentity } from './local-identity.js';
import { handleRenew } from './renew.js';
import { handleCerts } from './certs.js';
import { handleHeartbeat } from './heartbeat.js';
import { joinHandlers } from './platform.js';
import type { JoinMethodOptions } from '../join/servers.js';
import type { Bot, Role } from './resources.js';
import { ConnectionCounter, DEFAULT_CONNECTION_LIMITS, RateLimiter, RefusalSummary, sourceKey, type ConnectionLimits } from './ratelimit.js';

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
  now?: () => number;
  logger?: Logger;
  /** Time and size bounds per client (defaults: DEFAULT_HTTP_LIMITS); tests shorten them. */
  httpLimits?: Partial<HttpLimits>;
  /** mwi.yaml `connection_limits` (default DEFAULT_CONNECTION_LIMITS); per process. */
  connectionLimits?: ConnectionLimits;
}

/** Rate and connection limits of one Auth Service process (issue #9, finding 6): see rateLimitKey. */
interface SourceLimits {
  rate: RateLimiter;
  connections: ConnectionCounter;
  refusals: RefusalSummary;
}

/** Longest a RATE_LIMITED answer is held back (see route). */
const MAX_REFUSAL_HOLD_MS = 1000;

/**
 * The bucket a request draws on: none for an administrator; its instance's own for a bot
 * instance that is not locked (a bot's requests are attributable and it can be locked, but one
 * bot must not fill the audit log or the disk either: a flood of certificate requests would
 * rotate the evidence away); the source address's for everyone else, however they
 * authenticated: an output certificate (workloads read those from destinations), the identity of
 * a locked instance or bot, or none.
 */
function rateLimitKey(ctx: AuthContext, claims: Claims | undefined, remote: string): string | undefined {
  if (claims?.kind === 'admin') return undefined;
  if (claims?.kind === 'bot' && activeLock(ctx, claims.bot, claims.instance) === undefined) return `bot_instance:${claims.instance}`;
  return sourceKey(remote);
}

/** The Auth Service: join, renew and admin APIs on one TLS 1.3 port. */
export class AuthServer {
  private constructor(
    readonly ctx: AuthContext,
    private readonly server: Server,
    private readonly log: Logger,
    private readonly timers: NodeJS.Timeout[],
    private readonly limits: HttpLimits,
    private readonly sources: SourceLimits,
  ) {}

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
    mkdirPrivate(opts.dataDir);
    const backend: Backend = openBackend(opts.storage, opts.dataDir);
    let audit: AuditLog | undefined;
    let listening: Server | undefined;
    try {
      const cas = await loadAuthorities(backend, opts.clusterName);
      // refused joins and challenges, the events an anonymous flood causes, rotate on their own
      audit = new SplitAuditLog(new FileAuditLog(join(opts.dataDir, 'audit', 'events.log'), now, opts.audit), new FileAuditLog(join(opts.dataDir, 'audit', 'refusals.log'), now, opts.audit));
      const ctx: AuthContext = {
        backend,
        cas,
        audit,
        now,
        roles: await ResourceCache.open<Role>(backend, '/roles/'),
        bots: await ResourceCache.open<Bot>(backend, '/bots/'),
        locks: await openLockCache(backend),
        methods: joinHandlers(backend, now, opts.joinMethods ?? {}),
      };
      const sans = {
        dns: [AUTH_SERVER_NAME, 'localhost', hostname(), ...(opts.tlsSans ?? []).filter((s) => !/^[\d.:]+$/.test(s))],
        ips: ['127.0.0.1', '::1', ...(/^[\d.:]+$/.test(host) && host !== '0.0.0.0' && host !== '::' ? [host] : []), ...(opts.tlsSans ?? []).filter((s) => /^[\d.:]+$/.test(s))],
      };
      const tls = await issueServerCert(ctx, sans);
      const admin = new AdminApi(ctx);
      const limits: HttpLimits = { ...DEFAULT_HTTP_LIMITS, ...opts.httpLimits };
      const server = createServer({
        ...serverOptions(limits),
        ...tls,
        ca: [cas.tlsUser.certPem],
        requestCert: true,
        // join has no client certificate; renew and admin check it per route
        rejectUnauthorized: false,
        minVersion: 'TLSv1.3',
      });
      // a client certificate from any other CA is refused at the connection, not per request
      server.on('secureConnection', (socket: TLSSocket) => {
        if (!socket.authorized && socket.getPeerCertificate()?.raw) socket.destroy();
      });
      // slow, half-open and malformed clients are cut off (issue #9, finding 2)
      hardenServer(server, limits, log);
      const conn = opts.connectionLimits ?? DEFAULT_CONNECTION_LIMITS;
      const sources: SourceLimits = {
        rate: new RateLimiter(conn.rates, now),
        connections: new ConnectionCounter(conn.maxConnections),
        // one log line per minute at most, however many are refused; never one audit event each
        refusals: new RefusalSummary(60_000, (refused, n, example) =>
          log.warn('refused requests over connection_limits (this process, last minute at most)', { refused, sources: n, example_source: example }),
        ),
      };
      server.on('connection', (socket: Socket) => {
        const key = sourceKey(socket.remoteAddress ?? '');
        if (!sources.connections.acquire(key)) {
          sources.refusals.add(key);
          socket.destroy();
          return;
        }
        socket.once('close', () => sources.connections.release(key));
      });
      const auth = new AuthServer(ctx, server, log, [], limits, sources);
      // every request goes through the one guard: nothing a request does can end the process
      server.on('request', guardRequests((req, res) => auth.route(req, res, admin), log));
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err: NodeJS.ErrnoException) =>
          reject(new MwiError('BAD_CONFIG', `cannot listen on ${opts.listen}: ${err.code ?? err.message}`, { field: 'listen', cause: err })),
        );
        server.listen(port, host, () => resolve());
      });
      listening = server;
      await writeAdminIdentity(ctx, opts.dataDir);
      writeFileAtomic(authInfoPath(opts.dataDir), JSON.stringify({ addr: auth.address, cluster_name: cas.clusterName, ca_pin: cas.caPin }, null, 2));
      auth.timers.push(
        setInterval(() => {
          void (async () => {
            server.setSecureContext({ ...(await issueServerCert(ctx, sans)), ca: [cas.tlsUser.certPem] });
            await writeAdminIdentity(ctx, opts.dataDir);
          })().catch((err) => log.error('refreshing local certificates failed', { error: String(err) }));
        }, LOCAL_REFRESH_MS).unref(),
      );
      // expired instances, used-challenge and replay markers: reads skip them, this frees the space
      auth.timers.push(setInterval(() => void backend.purgeExpired?.().catch((err) => log.error('purging expired items failed', { error: String(err) })), 10 * 60 * 1000).unref());
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

  private async route(req: IncomingMessage, res: ServerResponse, admin: AdminApi): Promise<void> {
    const remote = req.socket.remoteAddress ?? '';
    let path = '(unparsed)';
    try {
      const now = this.ctx.now();
      // every caller but an administrator draws on a bucket before anything is parsed, read or
      // stored for it (issue #9, finding 6: callers filled the disk): an unlocked bot on its
      // instance's own, anyone else on its source address's
      const limitKey = rateLimitKey(this.ctx, peerClaims(req, now, { expired: 'ignore' }), remote);
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
      const target = parseTarget(req.url);
      path = target.path;
      if (req.method === 'GET' && path === PATHS.ping) {
        return sendJson(res, 200, { cluster_name: this.clusterName, server_version: VERSION });
      }
      if (req.method === 'POST' && (path === PATHS.join || path === PATHS.renew)) {
        const caller = peerClaims(req, now, path === PATHS.join ? { expired: 'ignore' } : {});
        const identity = path === PATHS.join ? await handleJoin(this.ctx, await this.body(req), remote, caller) : await handleRenew(this.ctx, caller, await this.body(req), remote);
        // a renewal or refresh of this connection's own instance: the connection carries it on
        if (caller?.kind === 'bot' && identity.instance_id === caller.instance) {
          carryIdentity(req, { kind: 'bot', bot: identity.bot_name, instance: identity.instance_id, generation: identity.generation }, Date.parse(identity.expires));
        }
        return sendJson(res, 200, identity);
      }
      if (req.method === 'POST' && path === PATHS.challenge) return sendJson(res, 200, await handleChallenge(this.ctx, await this.body(req), remote));
      if (req.method === 'POST' && path === PATHS.certs) return sendJson(res, 200, await handleCerts(this.ctx, peerClaims(req, now), await this.body(req), remote));
      if (req.method === 'POST' && path === PATHS.heartbeat) return sendJson(res, 200, await handleHeartbeat(this.ctx, peerClaims(req, now), await this.body(req), remote));
      if (path.startsWith(`${PATHS.admin}/`)) return sendJson(res, 200, await this.routeAdmin(req, target, admin));
      throw new MwiError('NOT_FOUND', `no route ${req.method} ${path}`);
    } catch (err) {
      sendError(res, err, this.log, path);
    }
  }

  /** The request's JSON body, read within the body time limit. */
  private body(req: IncomingMessage): Promise<unknown> {
    return readJson(req, this.limits.bodyTimeoutMs);
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
    return { error: new MwiError('RATE_LIMITED', `too many requests from this ${key.startsWith('bot_instance:') ? 'bot instance' : 'address'}; retry later`), holdMs: Math.min(retryAfterS * 1000, MAX_REFUSAL_HOLD_MS) };
  }

  private async routeAdmin(req: IncomingMessage, url: RequestTarget, admin: AdminApi): Promise<unknown> {
    const claims = peerClaims(req, this.ctx.now());
    if (claims?.kind !== 'admin') throw new MwiError('ACCESS_DENIED', 'the admin API needs an admin identity');
    const user = claims.user;
    const parts = url.path.slice(PATHS.admin.length + 1).split('/').map((p) => decodeSegment(p));
    // a decoded %2F would become a storage key separator: no resource name holds one, except the
    // BOT/ID form of a bot instance's name (Teleport's), which admin.get splits itself
    const slashed = parts.findIndex((p, i) => p.includes('/') && !(i === 2 && parts[0] === 'resources' && parts[1] === 'bot_instance'));
    if (slashed >= 0) throw new MwiError('BAD_REQUEST', 'a name in the path cannot contain /', { field: 'path' });
    const q = url.query;
    const m = req.method;
    const [a, b, c] = parts;
    if (m === 'GET' && a === 'status') return admin.status();
    if (a === 'resources') {
      if (m === 'POST' && !b) {
        const body = (await this.body(req)) as { resource?: unknown; upsert?: boolean } | undefined;
        return admin.create(body?.resource, body?.upsert === true, user);
      }
      if (m === 'GET' && b && !c) {
        return admin.listJson(b, {
          ...(q.get('bot') ? { bot: q.get('bot')! } : {}),
          ...(q.get('start_after') ? { startAfter: q.get('start_after')! } : {}),
          ...(q.get('limit') ? { limit: Number(q.get('limit')) } : {}),
        });
      }
      if (m === 'GET' && b && c) return admin.get(b, c);
      if (m === 'DELETE' && b && c) return admin.remove(b, c, user).then(() => ({ ok: true }));
    }
    if (a === 'bots' && m === 'POST' && !b) return admin.addBot((await this.body(req)) as object, user);
    if (a === 'bots' && m === 'PUT' && b) return admin.updateBot({ ...((await this.body(req)) as object), name: b }, user);
    if (a === 'tokens' && m === 'POST') return admin.addToken((await this.body(req)) as object, user);
    if (a === 'audit' && m === 'GET') return this.ctx.audit.recent(Math.min(Number(q.get('limit') ?? 50) || 50, 10_000), q.get('type') ?? undefined);
    if (a === 'ca' && m === 'GET' && b) return { type: b, text: admin.exportCA(b) };
    if (a === 'sign' && b === 'host' && m === 'POST') return admin.signHost((await this.body(req)) as object, user);
    throw new MwiError('NOT_FOUND', `no admin route ${m} ${url.path}`);
  }

  /** Stops accepting connections, finishes in-flight requests, closes storage. */
  async close(): Promise<void> {
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
    await this.ctx.audit.close();
    await this.ctx.backend.close();
    this.log.info('auth service stopped');
  }
}
