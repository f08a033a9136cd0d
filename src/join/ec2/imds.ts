import { MwiError } from '../../errors.js';

/**
 * tbot's IMDSv2 client (EC2 instance metadata): a session token first (PUT), then the GET with
 * it. The endpoint is $AWS_EC2_METADATA_SERVICE_ENDPOINT when set, as for the AWS SDKs (tests
 * run a local one), else the link-local address every EC2 instance has.
 */

const DEFAULT_ENDPOINT = 'http://169.254.169.254';
const MAX_ANSWER = 64 * 1024;

/** The IMDS base URL for `env`. */
export function imdsEndpoint(env: NodeJS.ProcessEnv): string {
  return (env.AWS_EC2_METADATA_SERVICE_ENDPOINT || DEFAULT_ENDPOINT).replace(/\/+$/, '');
}

async function call(url: string, init: RequestInit, timeoutMs: number): Promise<string> {
  const res = await fetch(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${init.method ?? 'GET'} ${url}: HTTP ${res.status}`);
  if (text.length > MAX_ANSWER) throw new Error(`${url}: answer too long`);
  return text;
}

/**
 * GET `path` (e.g. `/latest/dynamic/instance-identity/rsa2048`) over IMDSv2. Fails with
 * UNREACHABLE naming the endpoint: off EC2 (or with a hop limit too low for a container) there is
 * no metadata service.
 */
export async function imdsGet(path: string, env: NodeJS.ProcessEnv, timeoutMs = 2000): Promise<string> {
  const base = imdsEndpoint(env);
  try {
    const token = await call(
      `${base}/latest/api/token`,
      { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } },
      timeoutMs,
    );
    return await call(`${base}${path}`, { headers: { 'x-aws-ec2-metadata-token': token.trim() } }, timeoutMs);
  } catch (cause) {
    const why = cause instanceof Error ? ((cause.cause as Error | undefined)?.message ?? cause.message) : String(cause);
    throw new MwiError(
      'UNREACHABLE',
      `the EC2 instance metadata service (IMDSv2) at ${base} did not answer ${path}: ${why} (is tbot on EC2? in a ` +
        'container, the instance needs a metadata hop limit of 2; $AWS_EC2_METADATA_SERVICE_ENDPOINT sets another ' +
        'endpoint)',
      { cause },
    );
  }
}
