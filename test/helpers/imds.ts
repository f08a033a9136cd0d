import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestPrincipal } from './sts.js';

/**
 * An EC2 instance metadata service (IMDSv2 only) on 127.0.0.1, for tbot through
 * $AWS_EC2_METADATA_SERVICE_ENDPOINT: a session token by PUT, then GETs with it (a GET without
 * one is refused, as IMDSv2-only instances do). It serves the region, an instance profile's
 * credentials (for the AWS SDK's chain) and the signed instance identity document.
 */
export interface TestImds {
  url: string;
  region: string;
  /** The instance profile's credentials (served at iam/security-credentials/ROLE). */
  principal: TestPrincipal | undefined;
  /** The base64 PKCS#7 served at dynamic/instance-identity/rsa2048. */
  rsa2048: string | undefined;
  /** Paths asked for, in order (without token checks failing). */
  requests: string[];
  close(): Promise<void>;
}

export async function startImds(opts: { region?: string; principal?: TestPrincipal; rsa2048?: string } = {}) {
  const tokens = new Set<string>();
  const role = 'bot-instance-role';
  const imds: TestImds = {
    url: '',
    region: opts.region ?? 'us-west-2',
    principal: opts.principal,
    rsa2048: opts.rsa2048,
    requests: [],
    close: async () => new Promise<void>((r) => server.close(() => r())),
  };
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').replace(/\?.*$/, '');
    const send = (status: number, body: string, type = 'text/plain') => {
      res.writeHead(status, { 'content-type': type });
      res.end(body);
    };
    req.resume();
    if (req.method === 'PUT' && path === '/latest/api/token') {
      if (!req.headers['x-aws-ec2-metadata-token-ttl-seconds']) return send(400, 'missing ttl');
      const t = randomUUID();
      tokens.add(t);
      return send(200, t);
    }
    if (req.method !== 'GET' || !tokens.has(String(req.headers['x-aws-ec2-metadata-token'] ?? '')))
      return send(401, 'Unauthorized');
    imds.requests.push(path);
    const p = imds.principal;
    const creds = p && {
      Code: 'Success',
      LastUpdated: new Date().toISOString(),
      Type: 'AWS-HMAC',
      AccessKeyId: p.accessKeyId,
      SecretAccessKey: p.secretAccessKey,
      Token: p.sessionToken,
      Expiration: new Date(Date.now() + 6 * 3600_000).toISOString(),
    };
    if (path === '/latest/meta-data/placement/region') return send(200, imds.region);
    if (p && /^\/latest\/meta-data\/iam\/security-credentials(-extended)?\/$/.test(path)) return send(200, role);
    if (creds && new RegExp(`^/latest/meta-data/iam/security-credentials(-extended)?/${role}$`).test(path))
      return send(200, JSON.stringify(creds), 'application/json');
    if (imds.rsa2048 && path === '/latest/dynamic/instance-identity/rsa2048') return send(200, imds.rsa2048);
    send(404, 'Not Found');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  imds.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return imds;
}
