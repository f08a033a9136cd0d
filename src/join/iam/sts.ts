import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { boundedRequest } from '../../util/bounded-request.js';
import { JoinRefusal } from '../types.js';
import type { StsRequest } from './request.js';

/** What STS said about who signed a request. */
export interface StsIdentity {
  account: string;
  arn: string;
  userId: string;
}

/** STS's answer to a forwarded request. */
export interface StsAnswer {
  status: number;
  body: Buffer;
}

/** Sends a checked request to STS at `host` (tests give their own). */
export type StsSender = (host: string, req: StsRequest) => Promise<StsAnswer>;

const TIMEOUT_MS = 10_000;
const MAX_ANSWER = 64 * 1024;

/**
 * The sender the Auth Service uses: https to the request's own host, its certificate verified
 * with the system trust store; the request's headers and body unchanged. `forwardUrl` (testing):
 * every request goes there instead, still naming its host in its Host header, whose check stays on.
 */
export function httpsSender(forward?: { url: URL; ca?: string | undefined }): StsSender {
  return (host, req) => {
    const to = forward?.url;
    const https = to ? to.protocol === 'https:' : true;
    return boundedRequest(
      https ? httpsRequest : httpRequest,
      {
        host: to ? to.hostname.replace(/^\[|\]$/g, '') : host,
        port: to?.port ? Number(to.port) : https ? 443 : 80,
        ...(https ? { servername: to ? to.hostname : host } : {}),
        ...(forward?.ca ? { ca: forward.ca } : {}),
        method: 'POST',
        path: '/',
        headers: Object.fromEntries(req.headers),
        agent: false,
      },
      req.body,
      { idleMs: TIMEOUT_MS, maxBytes: MAX_ANSWER, tooLong: `answer longer than ${MAX_ANSWER} bytes` },
    );
  };
}

/**
 * The caller's identity from STS's JSON answer: 200 only, then Account (12 digits), Arn (of that
 * account) and UserId. Anything else is a refusal naming what came back.
 */
export function readIdentity(answer: StsAnswer): StsIdentity {
  if (answer.status !== 200) {
    const code = /"Code"\s*:\s*"([A-Za-z.]{1,64})"/.exec(answer.body.toString('utf8'))?.[1];
    throw new JoinRefusal(`STS answered HTTP ${answer.status}${code ? ` (${code})` : ''}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(answer.body.toString('utf8'));
  } catch {
    throw new JoinRefusal('STS answered 200 with something that is not JSON');
  }
  const r = (doc as { GetCallerIdentityResponse?: { GetCallerIdentityResult?: Record<string, unknown> } } | null)
    ?.GetCallerIdentityResponse?.GetCallerIdentityResult;
  const { Account: account, Arn: arn, UserId: userId } = r ?? {};
  if (typeof account !== 'string' || !/^\d{12}$/.test(account))
    throw new JoinRefusal('STS answer: no 12-digit Account');
  if (typeof arn !== 'string' || !new RegExp(`^arn:aws[a-z-]*:(sts|iam)::${account}:\\S+$`).test(arn))
    throw new JoinRefusal(`STS answer: Arn ${JSON.stringify(String(arn).slice(0, 200))} is not of account ${account}`);
  if (typeof userId !== 'string' || userId.length === 0 || userId.length > 256)
    throw new JoinRefusal('STS answer: no UserId');
  return { account, arn, userId };
}
