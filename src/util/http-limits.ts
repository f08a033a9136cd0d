import { STATUS_CODES, type Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Logger } from './log.js';

/**
 * What one client may hold of a listener: time to finish a TLS handshake, to send its headers,
 * its whole request and its body, to stay idle, and how large its headers may be. A client that
 * opens connections and sends nothing, or trickles bytes, is cut off when the first bound passes
 * (issue #9: slow and half-open clients).
 */
export interface HttpLimits {
  /** TLS handshake, from accept to finished (TLS listeners only). */
  handshakeTimeoutMs: number;
  /** From the start of a request to the end of its headers. */
  headersTimeoutMs: number;
  /** From the start of a request to the end of its body. */
  requestTimeoutMs: number;
  /** An idle kept-alive connection is closed after this long. */
  keepAliveTimeoutMs: number;
  /** A connection with no traffic either way for this long is destroyed. */
  idleTimeoutMs: number;
  /** A JSON body must arrive within this long once the handler starts reading it. */
  bodyTimeoutMs: number;
  /** Request line plus headers, bytes; more is answered 431. */
  maxHeaderSize: number;
  /** Headers per request; more are dropped (Node keeps the first ones). */
  maxHeadersCount: number;
  /** How often Node checks the two request timeouts; they fire at most this much late. */
  checkIntervalMs: number;
}

/** The defaults of every mwi listener: well above what tbot, tctl and the bench need. */
export const DEFAULT_HTTP_LIMITS: Readonly<HttpLimits> = Object.freeze({
  handshakeTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 30_000,
  idleTimeoutMs: 120_000,
  bodyTimeoutMs: 10_000,
  maxHeaderSize: 16 * 1024,
  maxHeadersCount: 100,
  checkIntervalMs: 1_000,
});

/** Options for `http.createServer` / `https.createServer` that apply `limits`. */
export function serverOptions(limits: HttpLimits) {
  return {
    handshakeTimeout: limits.handshakeTimeoutMs,
    headersTimeout: Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs),
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    maxHeaderSize: limits.maxHeaderSize,
    connectionsCheckingInterval: limits.checkIntervalMs,
  };
}

const CLIENT_ERROR_STATUS: Record<string, number> = {
  HPE_HEADER_OVERFLOW: 431,
  ERR_HTTP_REQUEST_TIMEOUT: 408,
  HPE_CHUNK_EXTENSIONS_OVERFLOW: 413,
};

/**
 * Applies the limits that are not createServer options, and answers what the HTTP parser
 * refuses (malformed request lines, headers, chunked framing, timeouts): a short JSON error and
 * the connection closed, never more than one line of debug log each (a flood must not flood the
 * log). A client that does not read the answer is destroyed a second later.
 */
export function hardenServer(server: HttpServer | HttpsServer, limits: HttpLimits, log: Logger): void {
  server.maxHeadersCount = limits.maxHeadersCount;
  server.setTimeout(limits.idleTimeoutMs);
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    log.debug('refused a malformed or slow request', { code: err.code, remote: socket.remoteAddress });
    // like Node's own default: answer only if nothing of an earlier response went out
    if (err.code === 'ECONNRESET' || !socket.writable || socket.bytesWritten > 0) return void socket.destroy();
    const status = CLIENT_ERROR_STATUS[err.code ?? ''] ?? 400;
    const body = JSON.stringify({
      error: {
        code: 'BAD_REQUEST',
        message:
          status === 408
            ? 'request not received in time'
            : status === 431
              ? 'request headers too large'
              : 'malformed request',
      },
    });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nconnection: close\r\ncontent-type: application/json\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    setTimeout(() => socket.destroy(), 1000).unref();
  });
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    log.debug('tls handshake failed', { code: err.code, remote: socket.remoteAddress });
    socket.destroy();
  });
}
