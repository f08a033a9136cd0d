import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { HTTP_STATUS, isMwiError, MwiError } from '../errors.js';
import type { Logger } from '../util/log.js';
import { claimsFromCert, type Claims } from './claims.js';

const MAX_BODY = 64 * 1024;

/** Claims of the verified client certificate on this connection, parsed once per connection. */
const claimsBySocket = new WeakMap<TLSSocket, Claims | null>();

export function peerClaims(req: IncomingMessage): Claims | undefined {
  const socket = req.socket as TLSSocket;
  let c = claimsBySocket.get(socket);
  if (c === undefined) {
    c = null;
    if (socket.authorized) {
      const raw = socket.getPeerCertificate()?.raw;
      if (raw) c = claimsFromCert(raw) ?? null;
    }
    claimsBySocket.set(socket, c);
  }
  return c ?? undefined;
}

export async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new MwiError('BAD_REQUEST', `request body over ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new MwiError('BAD_REQUEST', 'request body is not valid JSON');
  }
}

/** A response body that is already JSON text (e.g. stored resources sent as stored). */
export class RawJson {
  constructor(readonly text: string) {}
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = body instanceof RawJson ? body.text : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Maps an error to its public form; internal details go only to the log. */
export function sendError(res: ServerResponse, err: unknown, log: Logger, route: string): void {
  if (isMwiError(err)) {
    if (err.code === 'INTERNAL' || err.code === 'STORAGE') log.error('request failed', { route, code: err.code, error: err.message });
    sendJson(res, HTTP_STATUS[err.code], { error: { code: err.code, message: err.message } });
    return;
  }
  log.error('unexpected error', { route, error: err instanceof Error ? err.stack : String(err) });
  sendJson(res, 500, { error: { code: 'INTERNAL', message: 'internal error' } });
}
