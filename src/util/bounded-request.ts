import type { ClientRequest, IncomingMessage } from 'node:http';
import type { RequestOptions } from 'node:https';

/** An answer read whole: its status and its body. */
export interface BoundedAnswer {
  status: number;
  body: Buffer;
}

/** The bounds of one exchange; a timeout fails with `no answer within Ns`. */
export interface RequestBounds {
  /** The longest silence of the connection, in ms. */
  idleMs?: number | undefined;
  /** The whole exchange, in ms: a slow drip is cut off too. */
  totalMs?: number | undefined;
  /** The longest body read; a longer one fails with `tooLong`. */
  maxBytes: number;
  tooLong: string;
}

/**
 * Sends one request with `send` (node:http's or node:https's `request`) and reads its answer,
 * bounded in time and size; no redirect is followed. Rejects with the transport's error.
 */
export function boundedRequest(
  send: (options: RequestOptions, cb: (res: IncomingMessage) => void) => ClientRequest,
  options: RequestOptions,
  body: string | Buffer | undefined,
  bounds: RequestBounds,
): Promise<BoundedAnswer> {
  const late = (ms: number) => new Error(`no answer within ${ms / 1000}s`);
  return new Promise((resolve, reject) => {
    const r = send({ ...options, ...(bounds.idleMs !== undefined ? { timeout: bounds.idleMs } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > bounds.maxBytes) r.destroy(new Error(bounds.tooLong));
        else chunks.push(c);
      });
      // an answer that came whole in the chunk that overflowed still ends: it is refused all the same
      res.on('end', () =>
        size > bounds.maxBytes
          ? reject(new Error(bounds.tooLong))
          : resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    const { totalMs, idleMs } = bounds;
    if (totalMs !== undefined) {
      const timer = setTimeout(() => r.destroy(late(totalMs)), totalMs);
      r.on('close', () => clearTimeout(timer));
    }
    if (idleMs !== undefined) r.on('timeout', () => r.destroy(late(idleMs)));
    r.on('error', reject);
    r.end(body);
  });
}
