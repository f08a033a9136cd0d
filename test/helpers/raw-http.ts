import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { parseAddr } from '../../src/api/client.js';

/** Where a raw request goes: the Auth Service's TLS port or a plain HTTP port (tbot's diag). */
export interface RawTarget {
  addr: string;
  tls: boolean;
  /** Local address to send from (e.g. 127.0.0.2). */
  localAddress?: string;
}

export interface RawResult {
  /** Everything the server sent before it closed (or before the wait ended). */
  text: string;
  /** The first response's status code, or undefined if none came. */
  status: number | undefined;
  /** True when the server closed the connection (end or reset) within the wait. */
  closed: boolean;
}

/** Opens a connection (TLS without a client certificate, or plain TCP) and waits until it is ready. */
export function openRaw(t: RawTarget): Promise<Socket> {
  const { host, port } = parseAddr(t.addr);
  return new Promise((resolve, reject) => {
    const opts = { host, port, ...(t.localAddress ? { localAddress: t.localAddress } : {}) };
    const s: Socket = t.tls
      ? tlsConnect({ ...opts, rejectUnauthorized: false, servername: 'localhost' }, () => resolve(s))
      : netConnect(opts, () => resolve(s));
    s.once('error', reject);
  });
}

/**
 * Sends `bytes` as they are (a request line the client libraries would refuse to send) and
 * collects the answer until the server closes or `waitMs` passes.
 */
export async function rawRequest(
  t: RawTarget,
  bytes: string | Buffer | Array<string | Buffer>,
  waitMs = 3000,
): Promise<RawResult> {
  const s = await openRaw(t);
  return collect(
    s,
    () => {
      for (const b of Array.isArray(bytes) ? bytes : [bytes]) s.write(b);
    },
    waitMs,
  );
}

/** Collects what `s` receives until it closes or `waitMs` passes; `start` runs once listening. */
export function collect(s: Socket, start: () => void, waitMs: number): Promise<RawResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ text, status: m ? Number(m[1]) : undefined, closed });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', () => finish(true));
    s.on('close', () => finish(true));
    s.on('error', () => finish(true));
    start();
  });
}

/** A plain GET with Connection: close; the answer's status and body. */
export async function rawGet(t: RawTarget, path: string): Promise<RawResult> {
  return rawRequest(t, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
}

/** The JSON body of a raw response (after the blank line; chunked bodies are not expected here). */
export function rawJson(r: RawResult): any {
  const i = r.text.indexOf('\r\n\r\n');
  return JSON.parse(r.text.slice(i + 4));
}

/** The value of header `name` in a raw response. */
export function rawHeader(r: RawResult, name: string): string | undefined {
  const head = r.text.slice(0, r.text.indexOf('\r\n\r\n'));
  const m = new RegExp(`^${name}:\\s*(.*)$`, 'im').exec(head);
  return m?.[1]?.trim();
}
