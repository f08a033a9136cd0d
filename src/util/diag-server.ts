import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MwiError } from '../errors.js';
import { guardRequests } from './http-guard.js';
import { DEFAULT_HTTP_LIMITS, hardenServer, serverOptions, type HttpLimits } from './http-limits.js';
import { parseTarget } from './http-target.js';
import type { Logger } from './log.js';
import { PROMETHEUS_CONTENT_TYPE } from './metrics.js';

/** A JSON answer of a diagnostics endpoint. */
export interface DiagAnswer {
  status: number;
  body: unknown;
}

/** What a diagnostics listener serves besides /livez. */
export interface DiagEndpoints {
  /** `/readyz` and `/readyz/<rest>` (`rest` is '' for the first). */
  readyz(rest: string): DiagAnswer | Promise<DiagAnswer>;
  /** `/metrics`: Prometheus text. */
  metrics(): string | Promise<string>;
}

export interface DiagListener {
  /** HOST:PORT actually bound. */
  address: string;
  close(): Promise<void>;
}

/**
 * An HTTP listener for `--diag-addr`: `/livez` (200 while the process runs), `/readyz`,
 * `/metrics`; GET and HEAD only. It goes through the guarded dispatch (a request cannot end the
 * process: issue #9, finding 1) and has the same bounds on slow clients as every listener.
 * Nothing it serves is secret; bind it to loopback unless a monitoring system elsewhere needs it.
 */
export async function listenDiagnostics(
  /** Where to listen (parsed by the caller: parseAddr), and the address as the user gave it. */
  bind: { host: string; port: number; given: string },
  endpoints: DiagEndpoints,
  log: Logger,
  httpLimits: Partial<HttpLimits> = {},
  /** The flag or key named when the address cannot be bound. */
  field = 'diag_addr',
): Promise<DiagListener> {
  const limits: HttpLimits = { ...DEFAULT_HTTP_LIMITS, ...httpLimits };
  const { host, port, given: addr } = bind;
  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    const send = (status: number, body: string, type = 'application/json') => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    let path: string;
    try {
      path = parseTarget(req.url).path;
    } catch {
      return send(400, '{"error":"bad request target"}');
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, '{"error":"method not allowed"}');
    if (path === '/livez') return send(200, '{"status":"ok"}');
    if (path === '/metrics') return send(200, await endpoints.metrics(), PROMETHEUS_CONTENT_TYPE);
    if (path === '/readyz' || path.startsWith('/readyz/')) {
      const a = await endpoints.readyz(path.slice('/readyz/'.length));
      return send(a.status, JSON.stringify(a.body));
    }
    send(404, '{"error":"not found"}');
  };
  const server: Server = createServer(serverOptions(limits), guardRequests(handler, log));
  hardenServer(server, limits, log);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new MwiError('BAD_CONFIG', `cannot listen on ${addr}: ${err.code ?? err.message}`, { field, cause: err })),
    );
    server.listen(port, host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  return {
    address: a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}
