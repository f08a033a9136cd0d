import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { parseAddr } from '../api/client.js';
import { AUTH_SERVER_NAME, PATHS } from '../api/wire.js';
import { MwiError } from '../errors.js';
import type { Backend } from '../storage/backend.js';
import { openBackend } from '../storage/open.js';
import { mkdirPrivate, writeFileAtomic } from '../util/fs.js';
import { createLogger, type Logger } from '../util/log.js';
import { VERSION } from '../version.js';
import { AdminApi } from './admin.js';
import { FileAuditLog, type AuditFileOptions, type AuditLog } from './audit.js';
import { loadAuthorities } from './authorities.js';
import { ResourceCache } from './cache.js';
import { openLockCache } from './access.js';
import type { AuthContext } from './context.js';
import { carryIdentity, peerClaims, readJson, sendError, sendJson } from './http.js';
import { handleChallenge, handleJoin } from './join.js';
import { authInfoPath, issueServerCert, writeAdminIdentity } from './local-identity.js';
import { handleCerts, handleHeartbeat, handleRenew } from './renew.js';
import { platformDeps, type KubernetesConfig } from './platform.js';
import type { OidcConfig } from '../join/jwt/jwks.js';
import type { Bot, Role } from './resources.js';

export interface AuthServerOptions {
  dataDir: string;
  /** HOST:PORT; port 0 picks a free port. */
  listen: string;
  clusterName: string;
  /** Storage URL (see openBackend); default SQLite under the data dir. */
  storage?: string | undefined;
  /** Extra DNS names / IPs for the server certificate. */
  tlsSans?: string[];
  oidc?: OidcConfig;
  kubernetes?: KubernetesConfig;
  audit?: AuditFileOptions;
  now?: () => number;
  logger?: Logger;
}

const LOCAL_REFRESH_MS = 12 * 3600 * 1000;

/** The Auth Service: join, renew and admin APIs on one TLS 1.3 port. */
export class AuthServer {
  private constructor(
    readonly ctx: AuthContext,
    private readonly server: Server,
    private readonly log: Logger,
    private readonly timers: NodeJS.Timeout[],
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
    try {
      const cas = await loadAuthorities(backend, opts.clusterName);
      audit = new FileAuditLog(join(opts.dataDir, 'audit', 'events.log'), now, opts.audit);
      const ctx: AuthContext = {
        backend,
        cas,
        audit,
        now,
        roles: await ResourceCache.open<Role>(backend, '/roles/'),
        bots: await ResourceCache.open<Bot>(backend, '/bots/'),
        locks: await openLockCache(backend),
        platform: platformDeps(backend, now, opts.oidc ?? {}, opts.kubernetes ?? {}),
      };
      const sans = {
        dns: [AUTH_SERVER_NAME, 'localhost', hostname(), ...(opts.tlsSans ?? []).filter((s) => !/^[\d.:]+$/.test(s))],
        ips: ['127.0.0.1', '::1', ...(/^[\d.:]+$/.test(host) && host !== '0.0.0.0' && host !== '::' ? [host] : []), ...(opts.tlsSans ?? []).filter((s) => /^[\d.:]+$/.test(s))],
      };
      const tls = await issueServerCert(ctx, sans);
      const admin = new AdminApi(ctx);
      const server = createServer({
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
      server.keepAliveTimeout = 30_000;
      const auth = new AuthServer(ctx, server, log, []);
      server.on('request', (req, res) => void auth.route(req, res, admin));
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err: NodeJS.ErrnoException) =>
          reject(new MwiError('BAD_CONFIG', `cannot listen on ${opts.listen}: ${err.code ?? err.message}`, { field: 'listen', cause: err })),
        );
        server.listen(port, host, () => resolve());
      });
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
      // expired instances, challenges and replay markers: reads skip them, this frees the space
      auth.timers.push(setInterval(() => void backend.purgeExpired?.().catch((err) => log.error('purging expired items failed', { error: String(err) })), 10 * 60 * 1000).unref());
      audit.emit({ event: 'auth.start', success: true, cluster_name: cas.clusterName, version: VERSION });
      log.info('auth service started', { cluster: cas.clusterName, addr: auth.address, ca_pin: cas.caPin });
      return auth;
    } catch (err) {
      await audit?.close();
      await backend.close();
      throw err;
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse, admin: AdminApi): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://auth');
    const path = url.pathname;
    const remote = req.socket.remoteAddress ?? '';
    try {
      if (req.method === 'GET' && path === PATHS.ping) {
        return sendJson(res, 200, { cluster_name: this.clusterName, server_version: VERSION });
      }
      const now = this.ctx.now();
      if (req.method === 'POST' && (path === PATHS.join || path === PATHS.renew)) {
        const caller = peerClaims(req, now, path === PATHS.join ? { expired: 'ignore' } : {});
        const identity = path === PATHS.join ? await handleJoin(this.ctx, await readJson(req), remote, caller) : await handleRenew(this.ctx, caller, await readJson(req), remote);
        // a renewal or refresh of this connection's own instance: the connection carries it on
        if (caller?.kind === 'bot' && identity.instance_id === caller.instance) {
          carryIdentity(req, { kind: 'bot', bot: identity.bot_name, instance: identity.instance_id, generation: identity.generation }, Date.parse(identity.expires));
        }
        return sendJson(res, 200, identity);
      }
      if (req.method === 'POST' && path === PATHS.challenge) return sendJson(res, 200, await handleChallenge(this.ctx, await readJson(req), remote));
      if (req.method === 'POST' && path === PATHS.certs) return sendJson(res, 200, await handleCerts(this.ctx, peerClaims(req, now), await readJson(req), remote));
      if (req.method === 'POST' && path === PATHS.heartbeat) return sendJson(res, 200, await handleHeartbeat(this.ctx, peerClaims(req, now), await readJson(req)));
      if (path.startsWith(`${PATHS.admin}/`)) return sendJson(res, 200, await this.routeAdmin(req, url, admin));
      throw new MwiError('NOT_FOUND', `no route ${req.method} ${path}`);
    } catch (err) {
      sendError(res, err, this.log, path);
    }
  }

  private async routeAdmin(req: IncomingMessage, url: URL, admin: AdminApi): Promise<unknown> {
    const claims = peerClaims(req, this.ctx.now());
    if (claims?.kind !== 'admin') throw new MwiError('ACCESS_DENIED', 'the admin API needs an admin identity');
    const user = claims.user;
    const parts = url.pathname.slice(PATHS.admin.length + 1).split('/').map(decodeURIComponent);
    const q = url.searchParams;
    const m = req.method;
    const [a, b, c] = parts;
    if (m === 'GET' && a === 'status') return admin.status();
    if (a === 'resources') {
      if (m === 'POST' && !b) {
        const body = (await readJson(req)) as { resource?: unknown; upsert?: boolean } | undefined;
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
    if (a === 'bots' && m === 'POST' && !b) return admin.addBot((await readJson(req)) as object, user);
    if (a === 'bots' && m === 'PUT' && b) return admin.updateBot({ ...((await readJson(req)) as object), name: b }, user);
    if (a === 'tokens' && m === 'POST') return admin.addToken((await readJson(req)) as object, user);
    if (a === 'audit' && m === 'GET') return this.ctx.audit.recent(Math.min(Number(q.get('limit') ?? 50) || 50, 10_000), q.get('type') ?? undefined);
    if (a === 'ca' && m === 'GET' && b) return { type: b, text: admin.exportCA(b) };
    if (a === 'sign' && b === 'host' && m === 'POST') return admin.signHost((await readJson(req)) as object, user);
    throw new MwiError('NOT_FOUND', `no admin route ${m} ${url.pathname}`);
  }

  /** Stops accepting connections, finishes in-flight requests, closes storage. */
  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
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
