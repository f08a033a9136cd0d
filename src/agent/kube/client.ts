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
/** The socket may stay silent this long. */
const IDLE_TIMEOUT_MS = 30_000;
/**
 * A whole request, from connecting to the last byte of the answer, at most this long: a server
 * that trickles a byte now and then never trips the idle timeout (a Secret is small; an API
 * server answers in well under a second).
 */
export const DEADLINE_MS = 60_000;
/** After tbot is told to stop, a request in flight may finish within this (a storage write lands). */
export const STOP_GRACE_MS = 2_000;

/** What a KubeClient is built with besides its connection. */
export interface KubeClientOptions {
  /** tbot's stop: requests in flight get `stopGraceMs` more, then are cut (KubeRequestCut, `stopped`). */
  signal?: AbortSignal | undefined;
  deadlineMs?: number;
  stopGraceMs?: number;
}

/** A request tbot cut itself: past its deadline, or tbot stopping. */
export class KubeRequestCut extends Error {
  constructor(
    readonly why: 'deadline' | 'stopped',
    readonly afterMs: number,
  ) {
    super(
      why === 'deadline'
        ? `no complete answer within ${afterMs / 1000} s`
        : `stopped: the Kubernetes API had not answered ${afterMs / 1000} s after the stop signal`,
    );
    this.name = 'KubeRequestCut';
  }
}

/**
 * A minimal Kubernetes API client over node:https (the official client needs Node >= 22 in its
 * 2.x line: docs LIBRARIES). Each request opens its own connection, so a one-shot tbot leaves no
 * idle socket behind, and sends the bearer token read just before it (a pod's token rotates).
 * A request ends within its deadline, and soon after tbot's stop signal, whatever the server does.
 * Errors: `KubeApiError` for an answer that is not 2xx, `KubeRequestCut`, the socket's error otherwise.
 */
export class KubeClient {
  private readonly deadlineMs: number;
  private readonly stopGraceMs: number;

  constructor(
    readonly conn: KubeConnection,
    private readonly opts: KubeClientOptions = {},
  ) {
    this.deadlineMs = opts.deadlineMs ?? DEADLINE_MS;
    this.stopGraceMs = opts.stopGraceMs ?? STOP_GRACE_MS;
  }

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
      const { signal } = this.opts;
      const timers: NodeJS.Timeout[] = [];
      const cut = (why: KubeRequestCut['why'], ms: number) =>
        timers.push(setTimeout(() => r.destroy(new KubeRequestCut(why, ms)), ms));
      const onStop = () => cut('stopped', this.stopGraceMs);
      const settle = () => {
        for (const t of timers) clearTimeout(t);
        signal?.removeEventListener('abort', onStop);
      };
      const r = request(
        url,
        {
          method: req.method,
          headers,
          ...(this.conn.ca ? { ca: this.conn.ca } : {}),
          ...(this.conn.cert ? { cert: this.conn.cert, key: this.conn.key } : {}),
          ...(this.conn.servername ? { servername: this.conn.servername } : {}),
          agent: false,
          timeout: IDLE_TIMEOUT_MS,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_RESPONSE_BYTES) r.destroy(new Error(`the answer exceeds ${MAX_RESPONSE_BYTES} bytes`));
            else chunks.push(c);
          });
          res.on('error', fail);
          res.on('end', () => {
            settle();
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
      function fail(err: Error): void {
        settle();
        reject(err);
      }
      cut('deadline', this.deadlineMs);
      if (signal?.aborted) onStop();
      else signal?.addEventListener('abort', onStop, { once: true });
      r.on('timeout', () => r.destroy(new Error(`no answer within ${IDLE_TIMEOUT_MS / 1000} s`)));
      r.on('error', fail);
      r.end(body);
    });
  }
}
