import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { HTTP_STATUS, isMwiError, MwiError } from '../errors.js';
import { answerInternal, requestIdOf } from '../util/http-guard.js';
import { DEFAULT_HTTP_LIMITS } from '../util/http-limits.js';
import type { Logger } from '../util/log.js';
import { claimsFromCert, type Claims } from './claims.js';

const MAX_BODY = 64 * 1024;

/** Who a connection speaks as, and until when. */
interface ConnectionIdentity {
  claims: Claims;
  /** Epoch ms: the certificate's notAfter, or the carried identity's expiry. */
  notAfter: number;
}

/**
 * Per connection: the verified client certificate's claims, parsed once, or the identity a
 * renewal on this connection issued since (see carryIdentity). null: no client identity.
 */
const identityBySocket = new WeakMap<TLSSocket, ConnectionIdentity | null>();

/**
 * The identity this connection speaks as. An identity past its expiry is refused (a kept-alive
 * connection can outlive the certificate it was opened with); with `expired: 'ignore'` (joins,
 * which need no identity) it is treated as none.
 */
export function peerClaims(req: IncomingMessage, now: number, opts: { expired?: 'ignore' } = {}): Claims | undefined {
  const socket = req.socket as TLSSocket;
  let id = identityBySocket.get(socket);
  if (id === undefined) {
    id = null;
    if (socket.authorized) {
      // the X509Certificate view parses only what is asked for (getPeerCertificate() builds
      // every field and three fingerprints: a measurable share of a new connection's cost)
      const cert = socket.getPeerX509Certificate();
      const claims = cert ? claimsFromCert(cert.raw) : undefined;
      if (cert && claims) id = { claims, notAfter: Date.parse(cert.validTo) };
    }
    identityBySocket.set(socket, id);
  }
  if (!id) return undefined;
  if (!(id.notAfter > now)) {
    if (opts.expired === 'ignore') return undefined;
    throw new MwiError('ACCESS_DENIED', `the identity this connection presented expired at ${new Date(id.notAfter).toISOString()}; connect again with a current one`);
  }
  return id.claims;
}

/**
 * After a renewal (or a refresh join) of the bot instance this connection speaks as, answered on
 * this connection: the connection now speaks as the identity just issued. Whoever holds the
 * connection proved the previous key and received the new certificate on it, so this grants
 * nothing they do not already hold; it lets tbot finish a renewal cycle (output certificates,
 * heartbeat) without a second TLS handshake. The previous generation is still refused on every
 * other connection, as before.
 */
export function carryIdentity(req: IncomingMessage, claims: Extract<Claims, { kind: 'bot' }>, notAfter: number): void {
  const socket = req.socket as TLSSocket;
  const cur = identityBySocket.get(socket);
  if (cur?.claims.kind !== 'bot' || cur.claims.bot !== claims.bot || cur.claims.instance !== claims.instance) return;
  identityBySocket.set(socket, { claims, notAfter });
}

/**
 * Reads a JSON body of at most 64 KiB. A body announced larger is refused before it is read; a
 * body that has not fully arrived `timeoutMs` after reading started is refused and the
 * connection destroyed (a client trickling bytes holds nothing for long).
 */
export async function readJson(req: IncomingMessage, timeoutMs: number = DEFAULT_HTTP_LIMITS.bodyTimeoutMs): Promise<unknown> {
  const announced = Number(req.headers['content-length'] ?? 0);
  if (announced > MAX_BODY) throw new MwiError('BAD_REQUEST', `request body over ${MAX_BODY} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  let late = false;
  const timer = setTimeout(() => {
    late = true;
    req.destroy();
  }, timeoutMs);
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY) throw new MwiError('BAD_REQUEST', `request body over ${MAX_BODY} bytes`);
      chunks.push(chunk);
    }
  } catch (err) {
    if (late) throw new MwiError('BAD_REQUEST', `request body not received within ${timeoutMs} ms`);
    if (isMwiError(err)) throw err;
    throw new MwiError('BAD_REQUEST', 'request body could not be read', { cause: err });
  } finally {
    clearTimeout(timer);
  }
  if (late) throw new MwiError('BAD_REQUEST', `request body not received within ${timeoutMs} ms`);
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new MwiError('BAD_REQUEST', 'request body is not valid JSON');
  }
}

/** A response body that is already JSON text (e.g. stored resources sent as stored), and extra headers. */
export class RawJson {
  constructor(
    readonly text: string,
    readonly headers: Record<string, string> = {},
  ) {}
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = body instanceof RawJson ? body.text : JSON.stringify(body);
  res.writeHead(status, { ...(body instanceof RawJson ? body.headers : {}), 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * Maps an error to its public form; internal details go only to the log. A server-side failure
 * (STORAGE, INTERNAL) names the request id in its body and in the log line, so an operator can
 * find one from the other; an error that is not an MwiError is answered by answerInternal.
 */
export function sendError(res: ServerResponse, err: unknown, log: Logger, route: string): void {
  if (!isMwiError(err)) return answerInternal(res, err, log);
  if (res.headersSent) return void res.destroy();
  const status = HTTP_STATUS[err.code];
  const id = status >= 500 ? requestIdOf(res) : undefined;
  if (status >= 500) log.error('request failed', { request_id: id, route: JSON.stringify(route.slice(0, 200)), code: err.code, error: err.message, detail: err.detail });
  sendJson(res, status, { error: { code: err.code, message: err.message, ...(id ? { request_id: id } : {}) } });
}
