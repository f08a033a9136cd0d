import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An STS stand-in on 127.0.0.1 that answers sts:GetCallerIdentity as AWS does, after checking the
 * SigV4 signature itself with the test credentials (its own implementation of AWS's algorithm, not
 * the signing library's): a wrong secret, a changed header or body, a stale date, a scope for
 * another region or service are refused with AWS's error codes.
 */

/** A test principal: its credentials, and what STS says of it. */
export interface TestPrincipal {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  account: string;
  arn: string;
  userId: string;
}

/** How the stand-in answers a request whose signature verified (the hostile tests' knobs). */
export type StsMode = 'ok' | '403' | '500' | 'garbage' | 'other-account';

export interface TestSts {
  /** http://127.0.0.1:PORT: the Auth Service's `iam.forward_url`. */
  url: string;
  principals: Map<string, TestPrincipal>;
  mode: StsMode;
  /** Every request received: its Host header, and whether its signature verified. */
  requests: Array<{ host: string; verified: boolean; reason?: string }>;
  close(): Promise<void>;
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();

/** The service and region an STS (or EC2) host answers for (STS's global endpoint signs as us-east-1). */
function hostScope(host: string): { service: string; region: string } | undefined {
  if (host === 'sts.amazonaws.com') return { service: 'sts', region: 'us-east-1' };
  const m = /^(sts|ec2)(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$/.exec(host);
  return m ? { service: m[1]!, region: m[2]! } : undefined;
}

/** SigV4 check of one request as STS makes it; the reason it fails, or undefined. */
export function sigv4Problem(
  req: { method: string; path: string; headers: Record<string, string>; body: Buffer },
  principals: Map<string, TestPrincipal>,
  now: number,
): { problem?: string; principal?: TestPrincipal } {
  const m =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(
      req.headers.authorization ?? '',
    );
  if (!m) return { problem: 'MissingAuthenticationToken' };
  const [, keyId, date, region, service, signedList, signature] = m as unknown as string[];
  const p = principals.get(keyId!);
  if (!p) return { problem: 'InvalidClientTokenId' };
  const scope = hostScope(req.headers.host ?? '');
  if (!scope || service !== scope.service || region !== scope.region) return { problem: 'SignatureDoesNotMatch' };
  const amzDate = req.headers['x-amz-date'] ?? '';
  const t = Date.parse(amzDate.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z'));
  if (!amzDate.startsWith(date!) || !(Math.abs(now - t) <= 15 * 60_000)) return { problem: 'SignatureDoesNotMatch' };
  const signed = signedList!.split(';');
  if (!signed.includes('host')) return { problem: 'SignatureDoesNotMatch' };
  if (p.sessionToken !== undefined && req.headers['x-amz-security-token'] !== p.sessionToken)
    return { problem: 'InvalidClientTokenId' };
  const canonicalHeaders = signed.map((h) => `${h}:${(req.headers[h] ?? '').trim().replace(/\s+/g, ' ')}\n`).join('');
  const canonical = [req.method, req.path, '', canonicalHeaders, signedList, sha256(req.body)].join('\n');
  const credentialScope = `${date}/${region}/${service}/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, credentialScope, sha256(canonical)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${p.secretAccessKey}`, date!), scope.region), scope.service), 'aws4_request');
  const want = Buffer.from(hmac(key, toSign).toString('hex'));
  const got = Buffer.from(signature!);
  return want.length === got.length && timingSafeEqual(want, got)
    ? { principal: p }
    : { problem: 'SignatureDoesNotMatch' };
}

/** A request's whole body. */
export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** A principal with fresh random credentials (session token included) in account `account`. */
export function testPrincipal(account = '123456789012', role = 'bot-role', session = 'i-0123456789abcdef0') {
  const id = `ASIA${randomUUID().replace(/-/g, '').slice(0, 16).toUpperCase()}`;
  return {
    accessKeyId: id,
    secretAccessKey: randomUUID() + randomUUID(),
    sessionToken: `tok-${randomUUID()}`,
    account,
    arn: `arn:aws:sts::${account}:assumed-role/${role}/${session}`,
    userId: `AROA${id.slice(4)}:${session}`,
  } satisfies TestPrincipal;
}

/** Starts the stand-in with these principals. */
export async function startSts(principals: TestPrincipal[] = []): Promise<TestSts> {
  const sts: TestSts = {
    url: '',
    principals: new Map(principals.map((p) => [p.accessKeyId, p])),
    mode: 'ok',
    requests: [],
    close: async () => new Promise<void>((r) => server.close(() => r())),
  };
  const server: Server = createServer((req, res) => {
    void readBody(req).then((body) => {
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)]));
      const { problem, principal } = sigv4Problem(
        { method: req.method ?? '', path: req.url ?? '', headers, body },
        sts.principals,
        Date.now(),
      );
      sts.requests.push({ host: headers.host ?? '', verified: !problem, ...(problem ? { reason: problem } : {}) });
      const requestId = randomUUID();
      const json = (status: number, doc: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(doc));
      };
      const error = (status: number, code: string) =>
        json(status, { Error: { Code: code, Message: code, Type: 'Sender' }, RequestId: requestId });
      if (problem) return error(403, problem);
      if (new URLSearchParams(body.toString('utf8')).get('Action') !== 'GetCallerIdentity')
        return error(400, 'InvalidAction');
      if (sts.mode === '403') return error(403, 'AccessDenied');
      if (sts.mode === '500') return error(500, 'InternalFailure');
      if (sts.mode === 'garbage') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end('<html>not json');
      }
      const p = principal!;
      const account = sts.mode === 'other-account' ? '999999999999' : p.account;
      json(200, {
        GetCallerIdentityResponse: {
          GetCallerIdentityResult: { Account: account, Arn: p.arn, UserId: p.userId },
          ResponseMetadata: { RequestId: requestId },
        },
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  sts.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return sts;
}
