import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isMwiError } from '../errors.js';
import { checkFetchUrl } from '../join/jwt/jwks.js';
import { createJoinHandlers, type JoinMethodOptions } from '../join/servers.js';
import type { JoinHandler, ServerDeps } from '../join/types.js';
import { key, type Backend } from '../storage/backend.js';

/** GET a JSON document with a timeout and a size cap. */
async function fetchJson(url: string, opts: { allowHttp?: boolean } = {}): Promise<unknown> {
  checkFetchUrl(url, 'issuer', opts.allowHttp === true);
  const headers = { accept: 'application/json' };
  const res = await fetch(url, { signal: AbortSignal.timeout(10_000), redirect: 'error', headers });
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  const text = await res.text();
  if (text.length > 1_000_000) throw new Error(`GET ${url}: answer too large`);
  return JSON.parse(text);
}

function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string>,
  caPem?: string,
): Promise<{ status: number; body: unknown }> {
  const u = checkFetchUrl(url, 'url');
  const data = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(
      u,
      {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json', 'content-length': data.length },
        timeout: 10_000,
        ...(caPem ? { ca: caPem } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            resolve({
              status: res.statusCode ?? 0,
              body: JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null'),
            });
          } catch (err) {
            // JSON.parse throws a SyntaxError
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(data);
  });
}

/** What every server half is built from: storage-backed replay markers, HTTP, the clock, the environment. */
function serverDeps(backend: Backend, now: () => number, env: ServerDeps['env']): ServerDeps {
  return {
    now,
    fetchJson,
    postJson,
    env,
    async markUsed(id, expiresAt) {
      try {
        await backend.create(key('jwt_used', id), '1', { expires: expiresAt });
        return true;
      } catch (err) {
        if (isMwiError(err, 'ALREADY_EXISTS')) return false;
        throw err;
      }
    },
  };
}

/** The join methods' server halves for one Auth Service process, from their mwi.yaml sections. */
export function joinHandlers(
  backend: Backend,
  now: () => number,
  options: JoinMethodOptions,
  env: ServerDeps['env'] = process.env,
): ReadonlyMap<string, JoinHandler> {
  return createJoinHandlers(serverDeps(backend, now, env), options);
}
