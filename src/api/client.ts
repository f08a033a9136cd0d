import type { IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest, Agent } from 'node:https';
import {
  connect as tlsConnect,
  createSecureContext,
  type PeerCertificate,
  type DetailedPeerCertificate,
  type SecureContext,
} from 'node:tls';
import type { Socket } from 'node:net';
import { X509Certificate, createHash, createPublicKey } from 'node:crypto';
import { isMwiError, MwiError, type ErrorCode, ERROR_CODES } from '../errors.js';
import { spkiPin } from '../crypto/keys.js';
import { AUTH_SERVER_NAME, PATHS, type ErrorBody } from './wire.js';
import type {
  JwtSvidRequest,
  JwtSvidResponse,
  WorkloadBundle,
  X509SvidRequest,
  X509SvidResponse,
} from './workload-identity.js';

export interface ClientTLS {
  /**
   * How the Auth Service is authenticated. PEM CA certificates: its own certificate, asked for by
   * name (AUTH_SERVER_NAME, whatever address is dialled) and verified with these CAs (the
   * cluster's, learned at a pinned or a public first contact). `system`: as a browser would, the
   * certificate served for the dialled host name (the operator's, from a public CA), verified with
   * this machine's trust store: Node's CA list plus NODE_EXTRA_CA_CERTS (or, when Node runs with
   * --use-openssl-ca, OpenSSL's store: SSL_CERT_FILE, SSL_CERT_DIR, /etc/ssl/certs), and the
   * host name checked against it.
   */
  ca: string[] | 'system';
  /** Client certificate and key for mTLS (renew, certs, admin). */
  cert?: string;
  key?: string;
}

/** Splits `host:port`, accepting `[v6]:port`; the port defaults to 3025. */
export function parseAddr(addr: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(addr) ?? /^([^:]+)(?::(\d+))?$/.exec(addr);
  if (!m || !m[1]) throw new MwiError('BAD_CONFIG', `invalid address ${JSON.stringify(addr)} (expected HOST:PORT)`);
  const port = m[2] ? Number(m[2]) : 3025;
  if (!(Number.isInteger(port) && port >= 0 && port < 65536))
    throw new MwiError('BAD_CONFIG', `invalid port in ${JSON.stringify(addr)}`);
  return { host: m[1], port };
}

/** Node's codes for a certificate chain that does not lead to a trusted CA, or is not valid now. */
const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'INVALID_CA',
  'CERT_REJECTED',
]);

/**
 * A public first contact (`proxy_server`) whose certificate this machine does not accept: says
 * which check failed and the two ways out, a trust store that holds the issuing CA or a pin on
 * the Auth Service's own CA.
 */
function untrustedServer(addr: string, err: NodeJS.ErrnoException): MwiError | undefined {
  const fixes =
    'add the CA that issued it to the trust store (NODE_EXTRA_CA_CERTS=FILE, or NODE_OPTIONS=--use-openssl-ca ' +
    "for OpenSSL's system store), or set onboarding.ca_pins (--ca-pin, printed by mwi start and tctl status) " +
    "to trust the Auth Service's own CA instead";
  if (err.code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return new MwiError(
      'ACCESS_DENIED',
      `the certificate of the Auth Service at ${addr} is not valid for that name (${err.message}): use an ` +
        `address the certificate names in proxy_server, or ${fixes}`,
      { cause: err },
    );
  if (err.code && UNTRUSTED.has(err.code))
    return new MwiError(
      'ACCESS_DENIED',
      `the certificate of the Auth Service at ${addr} is not trusted by this machine (${err.code}: ` +
        `${err.message}): ${fixes}`,
      { cause: err },
    );
  return undefined;
}

function unreachable(addr: string, cause: unknown): MwiError {
  const reason = cause instanceof Error ? ((cause as NodeJS.ErrnoException).code ?? cause.message) : String(cause);
  return new MwiError('UNREACHABLE', `cannot reach the Auth Service at ${addr}: ${reason}`, { cause });
}

/**
 * First contact without a trusted CA: connects, and returns the CA certificate from the chain
 * the server presented whose SPKI hash matches one of `pins`, after checking that it really
 * signed the server's certificate. No request is sent before this succeeds.
 */
export async function discoverCA(addr: string, pins: string[] | 'any', timeoutMs = 10_000): Promise<string> {
  const { host, port } = parseAddr(addr);
  const chain = await new Promise<DetailedPeerCertificate>((resolve, reject) => {
    const socket = tlsConnect({
      host,
      port,
      servername: AUTH_SERVER_NAME,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.3',
    });
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error('timed out')));
    socket.once('secureConnect', () => {
      const peer = socket.getPeerCertificate(true);
      socket.end();
      resolve(peer);
    });
    socket.once('error', (err) => reject(unreachable(addr, err)));
  });
  const wanted = new Set(pins === 'any' ? [] : pins.map((p) => p.toLowerCase()));
  let leaf: X509Certificate | undefined;
  const seen = new Set<PeerCertificate>();
  for (let c: DetailedPeerCertificate | undefined = chain; c && !seen.has(c); c = c.issuerCertificate) {
    seen.add(c);
    const cert = new X509Certificate(c.raw);
    leaf ??= cert;
    if (!cert.ca) continue;
    const pin = spkiPin(createPublicKey(cert.publicKey.export({ type: 'spki', format: 'pem' })));
    if ((pins === 'any' || wanted.has(pin)) && leaf.verify(cert.publicKey) && leaf.checkIssued(cert))
      return cert.toString();
  }
  throw new MwiError(
    'CA_PIN_MISMATCH',
    `the Auth Service at ${addr} presented no CA matching the configured CA pin (check ca_pins)`,
  );
}

/**
 * TLS contexts by credentials: building one parses the CA certificates and the key (about a
 * millisecond), so clients with the same credentials (tctl's, a burst of joins) share it.
 */
const contexts = new Map<string, SecureContext>();
const CONTEXTS_KEPT = 16;

function secureContextFor(tls: ClientTLS): SecureContext {
  const id = createHash('sha256')
    .update(JSON.stringify([tls.ca, tls.cert ?? '', tls.key ?? '']))
    .digest('base64');
  let ctx = contexts.get(id);
  if (!ctx) {
    ctx = createSecureContext({
      // without `ca`, Node's default store: its CA list and NODE_EXTRA_CA_CERTS (or OpenSSL's)
      ...(tls.ca === 'system' ? {} : { ca: tls.ca }),
      ...(tls.cert ? { cert: tls.cert, key: tls.key } : {}),
      minVersion: 'TLSv1.3',
    });
    if (contexts.size >= CONTEXTS_KEPT) contexts.delete(contexts.keys().next().value!);
  }
  // most recently used last
  contexts.delete(id);
  contexts.set(id, ctx);
  return ctx;
}

export interface CallOptions<T> {
  /**
   * The answer carries new credentials for this client (a renewal): see ClientConnections. A
   * throw here (e.g. the certificate is not for our key) fails the call.
   */
  rekey?: (answer: T) => ClientTLS;
  /** Called with the response headers, before the body has arrived. */
  onHeaders?: (headers: IncomingHttpHeaders) => void;
}

export interface ApiClientOptions {
  /** One or more Auth Service addresses; tried in order on connection failure. */
  addrs: string[];
  tls: ClientTLS;
  timeoutMs?: number;
}

/** How often a RATE_LIMITED request is sent again, and the longest wait honoured each time. */
const RATE_LIMIT_RETRIES = 5;
const MAX_RETRY_AFTER_MS = 30_000;

/**
 * Which certificate a client presents on which connection: every new connection presents the
 * current credentials. After a renewal, the connection that carried it is kept (the Auth Service
 * now treats it as the new identity), new connections present the new credentials, and every
 * other connection is closed: were one still open, a request on it would present the previous
 * generation and be taken for a copy.
 */
class ClientConnections {
  /** The keep-alive pool requests go through. */
  readonly agent: Agent;
  private context: SecureContext | undefined;

  constructor(private tls: ClientTLS) {
    // credentials are not agent options (those are copied into every request and make up the
    // pool key): each new connection takes the current context, so after a renewal the
    // connection that carried it stays in the pool. No TLS session resumption: a resumed session
    // keeps the client certificate it was made with.
    this.agent = new Agent({
      keepAlive: true,
      maxCachedSessions: 0,
      // the cluster's CAs verify the Auth Service's own certificate, named AUTH_SERVER_NAME; the
      // system store, the certificate for the dialled host (Node sends that name, and checks it)
      ...(tls.ca === 'system' ? {} : { servername: AUTH_SERVER_NAME }),
      minVersion: 'TLSv1.3',
    });
    const connect = this.agent.createConnection.bind(this.agent) as (o: object, cb?: unknown) => Socket;
    (this.agent as unknown as { createConnection: (o: object, cb?: unknown) => Socket }).createConnection = (o, cb) =>
      connect({ ...o, secureContext: (this.context ??= secureContextFor(this.tls)) }, cb);
  }

  /** A renewal answered on `carrier`: new connections present `tls`; every other one is closed. */
  renewed(tls: ClientTLS, carrier: Socket | undefined): void {
    // the name asked for is fixed with the pool: a client keeps the kind of trust it was made with
    if ((tls.ca === 'system') !== (this.tls.ca === 'system'))
      throw new TypeError('a renewal cannot change how the Auth Service is verified');
    this.tls = tls;
    this.context = undefined;
    for (const pool of [this.agent.freeSockets, this.agent.sockets]) {
      for (const list of Object.values(pool)) for (const s of [...(list ?? [])]) if (s !== carrier) s.destroy();
    }
  }

  close(): void {
    this.agent.destroy();
  }
}

/**
 * JSON-over-HTTPS client for the Auth Service. The server is verified by the cluster's CA, never
 * by address; or, for a public first contact (`ca: 'system'`), by the trust store and the address.
 */
export class ApiClient {
  private readonly connections: ClientConnections;
  private preferred = 0;

  constructor(private readonly opts: ApiClientOptions) {
    if (opts.addrs.length === 0) throw new TypeError('ApiClient needs at least one address');
    this.connections = new ClientConnections(opts.tls);
  }

  /** The Auth Service addresses this client uses. */
  get addrs(): readonly string[] {
    return this.opts.addrs;
  }

  /**
   * Sends one request, failing over between addresses while they are unreachable. A request the
   * Auth Service refused as RATE_LIMITED (refused before it was read, so it changed nothing) is
   * sent again after the Retry-After it named, a few times: many tbots joining at once through
   * one address (a NAT gateway) spread out instead of failing.
   */
  async call<T>(
    method: 'GET' | 'POST' | 'DELETE' | 'PUT',
    path: string,
    body?: unknown,
    opts: CallOptions<T> = {},
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.callOnce(method, path, body, opts);
      } catch (err) {
        if (!isMwiError(err, 'RATE_LIMITED') || attempt >= RATE_LIMIT_RETRIES) throw err;
        const waitMs = Math.min(err.retryAfterMs ?? 1000, MAX_RETRY_AFTER_MS);
        await new Promise((r) => setTimeout(r, waitMs * (1 + Math.random() * 0.2)));
      }
    }
  }

  private async callOnce<T>(
    method: 'GET' | 'POST' | 'DELETE' | 'PUT',
    path: string,
    body: unknown,
    opts: CallOptions<T>,
  ): Promise<T> {
    const n = this.opts.addrs.length;
    let last: unknown;
    for (let i = 0; i < n; i++) {
      const idx = (this.preferred + i) % n;
      try {
        const { out, socket } = await this.once<T>(this.opts.addrs[idx]!, method, path, body, opts.onHeaders);
        this.preferred = idx;
        if (opts.rekey) this.connections.renewed(opts.rekey(out), socket);
        return out;
      } catch (err) {
        last = err;
        if (!(err instanceof MwiError && err.code === 'UNREACHABLE')) throw err;
      }
    }
    throw last;
  }

  private once<T>(
    addr: string,
    method: string,
    path: string,
    body?: unknown,
    onHeaders?: (h: IncomingHttpHeaders) => void,
  ): Promise<{ out: T; socket: Socket | undefined }> {
    const { host, port } = parseAddr(addr);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        {
          host,
          port,
          method,
          path,
          agent: this.connections.agent,
          ...(this.opts.tls.ca === 'system' ? {} : { servername: AUTH_SERVER_NAME }),
          headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
          timeout: this.opts.timeoutMs ?? 15_000,
        },
        (res) => {
          const socket = res.socket;
          if ((res.statusCode ?? 500) < 400) onHeaders?.(res.headers);
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            try {
              json = text ? JSON.parse(text) : {};
            } catch {
              return reject(
                new MwiError('INTERNAL', `the Auth Service sent a malformed answer (HTTP ${res.statusCode})`),
              );
            }
            if ((res.statusCode ?? 500) >= 400) {
              const e = (json as ErrorBody).error;
              const code = e && e.code in ERROR_CODES ? (e.code as ErrorCode) : 'INTERNAL';
              const retryAfter = Number(res.headers['retry-after']);
              return reject(
                new MwiError(
                  code,
                  e?.message ?? `HTTP ${res.statusCode}`,
                  Number.isFinite(retryAfter) && retryAfter >= 0 ? { retryAfterMs: retryAfter * 1000 } : {},
                ),
              );
            }
            resolve({ out: json as T, socket });
          });
          res.on('error', (err) => reject(unreachable(addr, err)));
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (err) => {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        const untrusted = this.opts.tls.ca === 'system' ? untrustedServer(addr, err) : undefined;
        if (untrusted) reject(untrusted);
        else if (code.startsWith('ERR_TLS') || code.includes('CERT') || /certificate|alert/i.test(err.message)) {
          reject(
            new MwiError('ACCESS_DENIED', `TLS with the Auth Service at ${addr} failed: ${err.message}`, {
              cause: err,
            }),
          );
        } else reject(unreachable(addr, err));
      });
      req.end(payload);
    });
  }

  /** POST /v1/workload-identity/x509 (a bot identity): X.509-SVIDs for one public key. */
  issueX509Svids(req: X509SvidRequest): Promise<X509SvidResponse> {
    return this.call<X509SvidResponse>('POST', PATHS.workloadX509, req);
  }

  /** POST /v1/workload-identity/jwt (a bot identity): JWT-SVIDs for the audiences. */
  issueJwtSvids(req: JwtSvidRequest): Promise<JwtSvidResponse> {
    return this.call<JwtSvidResponse>('POST', PATHS.workloadJwt, req);
  }

  /** GET /v1/workload-identity/bundle (a bot identity): the trust bundle; `revision` changes on rotation. */
  workloadBundle(): Promise<WorkloadBundle> {
    return this.call<WorkloadBundle>('GET', PATHS.workloadBundle);
  }

  close(): void {
    this.connections.close();
  }
}
