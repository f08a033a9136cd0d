import type { IncomingHttpHeaders } from 'node:http';
import { request } from 'node:https';
import { discoverCA, parseAddr } from '../../src/api/client.js';
import { AUTH_SERVER_NAME } from '../../src/api/wire.js';

export interface RawAnswer {
  status: number;
  /** The body as received (not parsed: tests check what a caller sees, byte for byte). */
  text: string;
  json: any;
  /** The response headers (x-request-id, ...). */
  headers: IncomingHttpHeaders;
}

const cas = new Map<string, Promise<string>>();

/** The Auth Service's CA, checked against the pin once per address (not once per call). */
function pinnedCA(addr: string, caPin: string): Promise<string> {
  const k = `${addr} ${caPin}`;
  let ca = cas.get(k);
  if (!ca) cas.set(k, (ca = discoverCA(addr, [caPin])));
  return ca;
}

/**
 * One HTTPS request to a real Auth Service on a new connection, as an unauthenticated caller (the
 * CA is pinned, no client certificate) or with `client`'s certificate. For tests that check
 * exactly what a caller is told.
 */
export async function anonymousCall(
  addr: string,
  caPin: string,
  method: string,
  path: string,
  body?: unknown,
  client?: { cert: string; key: string },
): Promise<RawAnswer> {
  const ca = await pinnedCA(addr, caPin);
  const { host, port } = parseAddr(addr);
  const data = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port,
        method,
        path,
        ca,
        ...(client ?? {}),
        agent: false,
        servername: AUTH_SERVER_NAME,
        headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, text, json, headers: res.headers });
        });
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}
