import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeKubeApi {
  url: string;
  reviews: number;
  close(): Promise<void>;
}

/**
 * A Kubernetes API server's TokenReview endpoint on 127.0.0.1. `tokens` maps a presented token
 * to the service account it authenticates as and its audiences; anything else is unauthenticated.
 */
export async function startFakeKubeApi(
  bearer: string,
  tokens: Record<string, { user: string; audiences: string[]; pod?: string }>,
): Promise<FakeKubeApi> {
  const api: Partial<FakeKubeApi> = { reviews: 0 };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (req.method !== 'POST' || req.url !== '/apis/authentication.k8s.io/v1/tokenreviews') return send(404, {});
      if (req.headers.authorization !== `Bearer ${bearer}`)
        return send(401, { kind: 'Status', status: 'Failure', message: 'Unauthorized' });
      api.reviews!++;
      const review = JSON.parse(Buffer.concat(chunks).toString()) as { spec: { token: string; audiences?: string[] } };
      const t = tokens[review.spec.token];
      // like the real API server: authenticated only if the token's audiences meet the requested ones
      const audiences = t?.audiences.filter((a) => !review.spec.audiences || review.spec.audiences.includes(a)) ?? [];
      if (!t || audiences.length === 0)
        return send(201, { ...review, status: { authenticated: false, error: 'invalid bearer token' } });
      send(201, {
        ...review,
        status: {
          authenticated: true,
          audiences,
          user: { username: t.user, extra: t.pod ? { 'authentication.kubernetes.io/pod-name': [t.pod] } : {} },
        },
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return Object.assign(api, {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  }) as FakeKubeApi;
}
