import { request } from 'node:https';
import type { KubeConnection } from './connection.js';

/** Kubernetes' error object (`kind: Status`), as the API server sends it with a failure. */
export interface KubeStatus {
  kind?: string;
  status?: string;
  message?: string;
  /** NotFound, Forbidden, Conflict, Unauthorized, Invalid, ... */
  reason?: string;
  details?: { name?: string; kind?: string; group?: string; causes?: Array<{ message?: string; field?: string }> };
  code?: number;
}

/** An answer of the API server that is not a success: its HTTP status and its Status object. */
export class KubeApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: KubeStatus,
    readonly method: string,
    readonly path: string,
  ) {
    super(
      `${method} ${path}: HTTP ${status}${body.reason ? ` ${body.reason}` : ''}: ${body.message ?? '(no message)'}`,
    );
    this.name = 'KubeApiError';
  }
}

/** A request to the API server: its method, path (with query) and, for a write, its body. */
export interface KubeRequest {
  method: 'GET' | 'PATCH';
  path: string;
  body?: unknown;
  contentType?: string;
}

/** An Secret is at most 1 MiB: an answer far above that is not the API server's. */
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
const TIMEOUT_MS = 30_000;

/**
 * A minimal Kubernetes API client over node:https (the official client needs Node >= 22 in its
 * 2.x line: docs LIBRARIES). Each request opens its own connection, so a one-shot tbot leaves no
 * idle socket behind, and sends the bearer token read just before it (a pod's token rotates).
 * Errors: `KubeApiError` for an answer that is not 2xx; the socket's error otherwise.
 */
export class KubeClient {
  constructor(readonly conn: KubeConnection) {}

  send<T>(req: KubeRequest): Promise<T> {
    const url = new URL(this.conn.server + req.path);
    const body = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
    const headers: Record<string, string | number> = { accept: 'application/json', 'user-agent': 'mwi-tbot' };
    const token = this.conn.token?.();
    if (token) headers.authorization = `Bearer ${token}`;
    if (body) {
      headers['content-type'] = req.contentType ?? 'application/json';
      headers['content-length'] = body.length;
    }
    return new Promise<T>((resolvePromise, reject) => {
      const r = request(
        url,
        {
          method: req.method,
          headers,
          ...(this.conn.ca ? { ca: this.conn.ca } : {}),
          ...(this.conn.cert ? { cert: this.conn.cert, key: this.conn.key } : {}),
          ...(this.conn.servername ? { servername: this.conn.servername } : {}),
          agent: false,
          timeout: TIMEOUT_MS,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_RESPONSE_BYTES) r.destroy(new Error(`the answer exceeds ${MAX_RESPONSE_BYTES} bytes`));
            else chunks.push(c);
          });
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = text ? JSON.parse(text) : {};
            } catch {
              parsed = { message: text.slice(0, 200) };
            }
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) resolvePromise(parsed as T);
            else reject(new KubeApiError(status, parsed ?? {}, req.method, url.pathname));
          });
        },
      );
      r.on('timeout', () => r.destroy(new Error(`no answer within ${TIMEOUT_MS / 1000} s`)));
      r.on('error', reject);
      r.end(body);
    });
  }
}
