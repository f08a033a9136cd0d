import { existsSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isMwiError } from '../errors.js';
import { checkFetchUrl, fetchTransport, JwksCache, type OidcConfig } from '../join/jwt/jwks.js';
import type { PlatformDeps } from '../join/types.js';
import { key, type Backend } from '../storage/backend.js';

export interface KubernetesConfig {
  apiServer?: string | undefined;
  caPath?: string | undefined;
  tokenPath?: string | undefined;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** The Kubernetes API for `in_cluster` joins: mwi.yaml, else the pod's own environment. */
function kubernetesApi(cfg: KubernetesConfig, env: NodeJS.ProcessEnv): PlatformDeps['kubernetes'] {
  const apiServer = cfg.apiServer ?? (env.KUBERNETES_SERVICE_HOST ? `https://${env.KUBERNETES_SERVICE_HOST}:${env.KUBERNETES_SERVICE_PORT ?? '443'}` : undefined);
  const tokenPath = cfg.tokenPath ?? `${SA_DIR}/token`;
  if (!apiServer || !existsSync(tokenPath)) return undefined;
  const caPath = cfg.caPath ?? `${SA_DIR}/ca.crt`;
  checkFetchUrl(apiServer, 'kubernetes.api_server');
  return { apiServer, token: readFileSync(tokenPath, 'utf8').trim(), ...(existsSync(caPath) ? { caPem: readFileSync(caPath, 'utf8') } : {}) };
}

function postJson(url: string, body: unknown, headers: Record<string, string>, caPem?: string): Promise<{ status: number; body: unknown }> {
  const u = checkFetchUrl(url, 'url');
  const data = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(
      u,
      { method: 'POST', headers: { ...headers, 'content-type': 'application/json', 'content-length': data.length }, timeout: 10_000, ...(caPem ? { ca: caPem } : {}) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null') });
          } catch (err) {
            reject(err);
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(data);
  });
}

/** What platform-signed joins need, built once per Auth Service process. */
export function platformDeps(backend: Backend, now: () => number, oidc: OidcConfig, k8s: KubernetesConfig, env: NodeJS.ProcessEnv = process.env): PlatformDeps {
  return {
    jwks: new JwksCache(fetchTransport, oidc, now),
    postJson,
    kubernetes: kubernetesApi(k8s, env),
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
