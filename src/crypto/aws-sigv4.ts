import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';

/** The credentials SigV4 signs with: a set of keys, or a provider of them (the AWS default chain). */
export type AwsSigningCredentials = ConstructorParameters<typeof SignatureV4>[0]['credentials'];

/**
 * Signs (SigV4) a POST of the form `body` to `https://host/` for `service` in `region`: the Query
 * API's shape, as tbot's sts:GetCallerIdentity (iam) and the Auth Service's EC2 calls send it.
 * `headers` come in addition to host, content-type (form) and content-length; the signed headers.
 */
export async function signAwsPost(a: {
  credentials: AwsSigningCredentials;
  region: string;
  service: string;
  host: string;
  body: string;
  headers?: Record<string, string>;
}): Promise<Record<string, string>> {
  const signer = new SignatureV4({
    credentials: a.credentials,
    region: a.region,
    service: a.service,
    sha256: Hash.bind(null, 'sha256'),
  });
  const signed = await signer.sign({
    method: 'POST',
    protocol: 'https:',
    hostname: a.host,
    path: '/',
    query: {},
    headers: {
      host: a.host,
      'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
      'content-length': String(Buffer.byteLength(a.body)),
      ...a.headers,
    },
    body: a.body,
  });
  return signed.headers;
}
