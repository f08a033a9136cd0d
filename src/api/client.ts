import { request as httpsRequest, Agent } from 'node:https';
import { connect as tlsConnect, type PeerCertificate, type DetailedPeerCertificate } from 'node:tls';
import { X509Certificate, createPublicKey } from 'node:crypto';
import { MwiError, type ErrorCode, ERROR_CODES } from '../errors.js';
import { spkiPin } from '../crypto/keys.js';
import { AUTH_SERVER_NAME, type ErrorBody } from './wire.js';

export interface ClientTLS {
  /** PEM CA certificates that may sign the Auth Service's certificate. */
  ca: string[];
  /** Client certificate and key for mTLS (renew, certs, admin). */
  cert?: string;
  key?: string;
}

/** Splits `host:port`, accepting `[v6]:port`; the port defaults to 3025. */
export function parseAddr(addr: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(addr) ?? /^([^:]+)(?::(\d+))?$/.exec(addr);
  if (!m || !m[1]) throw new MwiError('BAD_CONFIG', `invalid address ${JSON.stringify(addr)} (expected HOST:PORT)`);
  const port = m[2] ? Number(m[2]) : 3025;
  if (!(Number.isInteger(port) && port >= 0 && port < 65536)) throw new MwiError('BAD_CONFIG', `invalid port in ${JSON.stringify(addr)}`);
  return { host: m[1], port };
}

function unreachable(addr: string, cause: unknown): MwiError {
  const reason = cause instanceof Error ? (cause as NodeJS.ErrnoException).code ?? cause.message : String(cause);
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
    const socket = tlsConnect({ host, port, servername: AUTH_SERVER_NAME, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
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
    if ((pins === 'any' || wanted.has(pin)) && leaf.verify(cert.publicKey) && leaf.checkIssued(cert)) return cert.toString();
  }
  throw new MwiError('CA_PIN_MISMATCH', `the Auth Service at ${addr} presented no CA matching the configured CA pin (check ca_pins)`);
}

export interface ApiClientOptions {
  /** One or more Auth Service addresses; tried in order on connection failure. */
  addrs: string[];
  tls: ClientTLS;
  timeoutMs?: number;
}

/** JSON-over-HTTPS client for the Auth Service. The server is verified by CA, never by address. */
export class ApiClient {
  private readonly agent: Agent;
  private preferred = 0;

  constructor(private readonly opts: ApiClientOptions) {
    if (opts.addrs.length === 0) throw new TypeError('ApiClient needs at least one address');
    this.agent = new Agent({
      keepAlive: true,
      ca: opts.tls.ca,
      ...(opts.tls.cert ? { cert: opts.tls.cert, key: opts.tls.key } : {}),
      servername: AUTH_SERVER_NAME,
      minVersion: 'TLSv1.3',
    });
  }

  /** The Auth Service addresses this client uses. */
  get addrs(): readonly string[] {
    return this.opts.addrs;
  }

  /** Sends one request, failing over between addresses while they are unreachable. */
  async call<T>(method: 'GET' | 'POST' | 'DELETE' | 'PUT', path: string, body?: unknown): Promise<T> {
    const n = this.opts.addrs.length;
    let last: unknown;
    for (let i = 0; i < n; i++) {
      const idx = (this.preferred + i) % n;
      try {
        const out = await this.once<T>(this.opts.addrs[idx]!, method, path, body);
        this.preferred = idx;
        return out;
      } catch (err) {
        last = err;
        if (!(err instanceof MwiError && err.code === 'UNREACHABLE')) throw err;
      }
    }
    throw last;
  }

  private once<T>(addr: string, method: string, path: string, body?: unknown): Promise<T> {
    const { host, port } = parseAddr(addr);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolve, reject) => {
      const req = httpsRequest(
        {
          host,
          port,
          method,
          path,
          agent: this.agent,
          servername: AUTH_SERVER_NAME,
          headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
          timeout: this.opts.timeoutMs ?? 15_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let json: unknown;
            try {
              json = text ? JSON.parse(text) : {};
            } catch {
              return reject(new MwiError('INTERNAL', `the Auth Service sent a malformed answer (HTTP ${res.statusCode})`));
            }
            if ((res.statusCode ?? 500) >= 400) {
              const e = (json as ErrorBody).error;
              const code = e && e.code in ERROR_CODES ? (e.code as ErrorCode) : 'INTERNAL';
              return reject(new MwiError(code, e?.message ?? `HTTP ${res.statusCode}`));
            }
            resolve(json as T);
          });
          res.on('error', (err) => reject(unreachable(addr, err)));
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (err) => {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        if (code.startsWith('ERR_TLS') || code.includes('CERT') || /certificate|alert/i.test(err.message)) {
          reject(new MwiError('ACCESS_DENIED', `TLS with the Auth Service at ${addr} failed: ${err.message}`, { cause: err }));
        } else reject(unreachable(addr, err));
      });
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
