import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import { CHALLENGE_HEADER, STS_BODY, STS_CONTENT_TYPE } from '../../src/join/iam/wire.js';
import { iamSection, iamServer } from '../../src/join/iam/server.js';
import type { JoinHandler, ServerDeps, ServerJoinContext } from '../../src/join/types.js';
import type { TestPrincipal } from './sts.js';

/** What to sign: an sts:GetCallerIdentity request by default, each part overridable for hostile tests. */
export interface SignOptions {
  host?: string;
  /** The region in the signature's scope (default: the host's, us-east-1 for the global host). */
  region?: string;
  method?: string;
  path?: string;
  body?: string;
  /** The challenge header's value; null: no challenge header. */
  challenge: string | null;
  /** Headers signed with the rest. */
  extra?: Record<string, string>;
  /** Headers added after signing (not among the SignedHeaders). */
  unsigned?: Record<string, string>;
  /** Headers left out after signing. */
  drop?: string[];
}

/** An HTTP/1.1 request as tbot sends it: request line, headers, blank line, body. */
export function rawRequest(method: string, path: string, headers: Record<string, string>, body: string): string {
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}`);
  return `${method} ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n${body}`;
}

/** Signs a request with `p`'s credentials as tbot does (SigV4), returning its headers and raw text. */
export async function signSts(p: TestPrincipal, o: SignOptions) {
  const host = o.host ?? 'sts.us-west-2.amazonaws.com';
  const region = o.region ?? /^sts(?:-fips)?\.([a-z0-9-]+)\.amazonaws/.exec(host)?.[1] ?? 'us-east-1';
  const body = o.body ?? STS_BODY;
  const signer = new SignatureV4({
    credentials: { accessKeyId: p.accessKeyId, secretAccessKey: p.secretAccessKey, sessionToken: p.sessionToken },
    region,
    service: 'sts',
    sha256: Hash.bind(null, 'sha256'),
  });
  const signed = await signer.sign({
    method: o.method ?? 'POST',
    protocol: 'https:',
    hostname: host,
    path: o.path ?? '/',
    query: {},
    headers: {
      host,
      'content-type': STS_CONTENT_TYPE,
      'content-length': String(Buffer.byteLength(body)),
      accept: 'application/json',
      ...(o.challenge === null ? {} : { [CHALLENGE_HEADER]: o.challenge }),
      ...o.extra,
    },
    body,
  });
  const headers: Record<string, string> = { ...signed.headers, ...o.unsigned };
  for (const d of o.drop ?? []) delete headers[d];
  return { headers, raw: rawRequest(o.method ?? 'POST', o.path ?? '/', headers, body) };
}

/** The payload field tbot sends: the raw request, base64. */
export const b64 = (raw: string | Buffer): string => Buffer.from(raw).toString('base64');

const deps = {} as ServerDeps;

/** The iam server half with mwi.yaml `iam` as given (the STS stand-in as forward_url). */
export function iamHandler(options: Record<string, unknown>): JoinHandler {
  const parsed = iamSection.schema.parse(options);
  const config = iamSection.build(parsed, deps);
  return iamServer.create(deps, (() => config) as never);
}

/** What verify sees of a join with `payload`, answering `challenge`, for a token with `allow`. */
export function joinCtx(
  payload: unknown,
  challenge: string | undefined,
  allow: unknown[],
  method = 'iam',
): ServerJoinContext {
  return {
    request: { token: 'aws-tok', join_method: method, public_key: '', payload },
    token: { id: 'aws-tok', botName: 'robot', spec: { join_method: method, bot_name: 'robot', allow }, status: {} },
    challenge: challenge === undefined ? undefined : { challenge },
  } as unknown as ServerJoinContext;
}
