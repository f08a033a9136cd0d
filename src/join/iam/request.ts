import { JoinRefusal } from '../types.js';
import { CHALLENGE_HEADER, STS_BODY } from './wire.js';

/**
 * The signed request an iam join presents, read strictly: it is sent on to AWS as it is, so
 * nothing in it may be read one way here and another way by AWS (no folded or repeated headers,
 * no bare CR or LF, no transfer coding, a body of exactly Content-Length bytes).
 */

/** Longest request accepted (a request with a session token is about 2 KiB). */
export const MAX_REQUEST_BYTES = 16 * 1024;

/** The headers a request may carry: anything else is refused, so nothing unexpected reaches AWS. */
const ALLOWED = new Set([
  'host',
  'authorization',
  'content-type',
  'content-length',
  'accept',
  'user-agent',
  'x-amz-date',
  'x-amz-security-token',
  'x-amz-content-sha256',
  CHALLENGE_HEADER,
]);

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e]*$/;

/** A request as read: its line, its headers in order (names lower-cased, each once), its body. */
export interface StsRequest {
  method: string;
  target: string;
  version: string;
  headers: ReadonlyArray<readonly [string, string]>;
  body: Buffer;
}

/** The value of header `name` (lower case), if present. */
export function header(req: StsRequest, name: string): string | undefined {
  return req.headers.find(([n]) => n === name)?.[1];
}

/** Reads the raw request; every refusal names what is wrong (audit log only). */
export function parseStsRequest(raw: Buffer): StsRequest {
  if (raw.length === 0 || raw.length > MAX_REQUEST_BYTES)
    throw new JoinRefusal(`sts_request: ${raw.length} bytes (expected 1 to ${MAX_REQUEST_BYTES})`);
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) throw new JoinRefusal('sts_request: no end of headers');
  const head = raw.subarray(0, end).toString('latin1');
  const body = raw.subarray(end + 4);
  // a bare CR or LF would end a line for some readers and not for others
  if (/\r(?!\n)|(?<!\r)\n/.test(head)) throw new JoinRefusal('sts_request: a bare CR or LF in the headers');
  const [line, ...fields] = head.split('\r\n');
  const m = /^([A-Z]+) (\S+) (HTTP\/\d\.\d)$/.exec(line ?? '');
  if (!m) throw new JoinRefusal(`sts_request: malformed request line ${JSON.stringify(line)}`);
  const headers: Array<readonly [string, string]> = [];
  for (const f of fields) {
    const colon = f.indexOf(':');
    const name = f.slice(0, colon).toLowerCase();
    const value = f.slice(colon + 1).trim();
    if (colon <= 0 || !TOKEN.test(f.slice(0, colon)))
      throw new JoinRefusal(`sts_request: malformed header line ${JSON.stringify(f.slice(0, 80))}`);
    if (!FIELD_VALUE.test(value)) throw new JoinRefusal(`sts_request: control characters in header ${name}`);
    if (!ALLOWED.has(name)) throw new JoinRefusal(`sts_request: header ${name} is not accepted`);
    if (headers.some(([n]) => n === name)) throw new JoinRefusal(`sts_request: header ${name} given twice`);
    headers.push([name, value]);
  }
  return { method: m[1]!, target: m[2]!, version: m[3]!, headers, body };
}

/** What the Authorization header of a SigV4 request says. */
interface SigV4Authorization {
  region: string;
  service: string;
  signedHeaders: string[];
}

function authorization(value: string | undefined): SigV4Authorization {
  const m =
    /^AWS4-HMAC-SHA256 Credential=([A-Za-z0-9]+)\/(\d{8})\/([a-z0-9-]+)\/([a-z0-9-]+)\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=[0-9a-f]{64}$/.exec(
      value ?? '',
    );
  if (!m) throw new JoinRefusal('sts_request: Authorization is not an AWS4-HMAC-SHA256 signature');
  return { region: m[3]!, service: m[4]!, signedHeaders: m[5]!.split(';') };
}

/**
 * Checks the request is exactly an sts:GetCallerIdentity for one of the allowed hosts, signed with
 * `challenge` in the challenge header: the host (AWS answers for that host only), the method,
 * path and body (no other action, no extra parameters), the JSON answer, and that the challenge is
 * present, equal and signed. Returns the host to send it to. The signature itself is AWS's to check.
 */
export function checkStsRequest(req: StsRequest, challenge: string, allowedHost: (host: string) => boolean): string {
  const host = header(req, 'host');
  if (!host || !allowedHost(host))
    throw new JoinRefusal(`sts_request: host ${JSON.stringify(host ?? '')} is not an allowed STS endpoint`);
  if (req.method !== 'POST' || req.target !== '/' || req.version !== 'HTTP/1.1')
    throw new JoinRefusal(`sts_request: ${req.method} ${req.target} ${req.version} (expected POST / HTTP/1.1)`);
  if (header(req, 'content-length') !== String(req.body.length))
    throw new JoinRefusal('sts_request: Content-Length does not match the body');
  if (req.body.toString('latin1') !== STS_BODY)
    throw new JoinRefusal(`sts_request: the body is not exactly ${STS_BODY}`);
  const type = header(req, 'content-type')?.toLowerCase().replace(/\s+/g, '');
  if (type !== 'application/x-www-form-urlencoded' && type !== 'application/x-www-form-urlencoded;charset=utf-8')
    throw new JoinRefusal('sts_request: Content-Type is not application/x-www-form-urlencoded');
  if (header(req, 'accept') !== 'application/json')
    throw new JoinRefusal('sts_request: Accept is not application/json');
  const auth = authorization(header(req, 'authorization'));
  if (auth.service !== 'sts') throw new JoinRefusal(`sts_request: signed for service ${auth.service}, not sts`);
  if (!/^\d{8}T\d{6}Z$/.test(header(req, 'x-amz-date') ?? '')) throw new JoinRefusal('sts_request: no X-Amz-Date');
  for (const name of ['host', 'x-amz-date', CHALLENGE_HEADER]) {
    if (!auth.signedHeaders.includes(name)) throw new JoinRefusal(`sts_request: ${name} is not a signed header`);
  }
  const sent = header(req, CHALLENGE_HEADER);
  if (sent === undefined) throw new JoinRefusal('sts_request: no challenge header');
  if (sent !== challenge) throw new JoinRefusal('sts_request: the signed challenge is not the one issued');
  return host;
}
