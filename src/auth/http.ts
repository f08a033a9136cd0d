import type { IncomingMessage, ServerResponse } from 'node:http';
import { HTTP_STATUS, isMwiError, MwiError } from '../errors.js';
import { answerInternal, requestIdOf } from '../util/http-guard.js';
import { DEFAULT_HTTP_LIMITS } from '../util/http-limits.js';
import type { Logger } from '../util/log.js';

const MAX_BODY = 64 * 1024;

/**
 * Reads a JSON body of at most `maxBody` bytes (default 64 KiB). A body announced larger is
 * refused before it is read; a body that has not fully arrived `timeoutMs` after reading started is refused and the
 * connection destroyed (a client trickling bytes holds nothing for long).
 */
export async function readJson(
  req: IncomingMessage,
  timeoutMs: number = DEFAULT_HTTP_LIMITS.bodyTimeoutMs,
  maxBody: number = MAX_BODY,
): Promise<unknown> {
  const announced = Number(req.headers['content-length'] ?? 0);
  if (announced > maxBody) throw new MwiError('BAD_REQUEST', `request body over ${maxBody} bytes`);
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
      if (size > maxBody) throw new MwiError('BAD_REQUEST', `request body over ${maxBody} bytes`);
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
  res.writeHead(status, {
    ...(body instanceof RawJson ? body.headers : {}),
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
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
  if (status >= 500)
    log.error('request failed', {
      request_id: id,
      route: JSON.stringify(route.slice(0, 200)),
      code: err.code,
      error: err.message,
      detail: err.detail,
    });
  sendJson(res, status, { error: { code: err.code, message: err.message, ...(id ? { request_id: id } : {}) } });
}
