import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { signAwsPost } from '../../crypto/aws-sigv4.js';
import { isMwiError, MwiError } from '../../errors.js';
import type { ClientJoinContext, ClientJoinMethod } from '../client-types.js';
import { imdsGet } from '../ec2/imds.js';
import {
  CHALLENGE_HEADER,
  STS_BODY,
  STS_CONTENT_TYPE,
  stsFipsHost,
  stsHost,
  type IamChallenge,
  type IamJoinPayload,
} from './wire.js';

const FIELD = 'onboarding.join_method iam';
const REGION = /^[a-z]{2}(-[a-z]+)+-\d+$/;

/**
 * The AWS region: $AWS_REGION, else $AWS_DEFAULT_REGION (as the AWS SDKs read them), else the
 * instance's from IMDS; none: the global STS endpoint.
 */
async function awsRegion(env: NodeJS.ProcessEnv, log: ClientJoinContext['log']): Promise<string | undefined> {
  const [name, given] = env.AWS_REGION
    ? ['AWS_REGION', env.AWS_REGION]
    : ['AWS_DEFAULT_REGION', env.AWS_DEFAULT_REGION];
  if (given) {
    if (!REGION.test(given))
      throw new MwiError('BAD_CONFIG', `not an AWS region: ${JSON.stringify(given)}`, { field: name });
    return given;
  }
  if (env.AWS_EC2_METADATA_DISABLED?.toLowerCase() === 'true') return undefined;
  try {
    const region = (await imdsGet('/latest/meta-data/placement/region', env, 1000)).trim();
    return REGION.test(region) ? region : undefined;
  } catch (err) {
    if (!isMwiError(err, 'UNREACHABLE')) throw err;
    log.info('no AWS region in the environment or from IMDS: signing for the global STS endpoint (set AWS_REGION)');
    return undefined;
  }
}

/** The STS host to sign for: the region's, or its FIPS endpoint with $AWS_USE_FIPS_ENDPOINT=true (AWS's setting). */
function endpoint(region: string | undefined, env: NodeJS.ProcessEnv): { host: string; signingRegion: string } {
  const signingRegion = region ?? 'us-east-1';
  if (env.AWS_USE_FIPS_ENDPOINT?.toLowerCase() !== 'true') return { host: stsHost(region), signingRegion };
  const host = stsFipsHost(region);
  if (!host)
    throw new MwiError('BAD_CONFIG', `AWS has no FIPS STS endpoint in ${region} (unset AWS_USE_FIPS_ENDPOINT)`, {
      field: 'AWS_USE_FIPS_ENDPOINT',
    });
  return { host, signingRegion };
}

/** An HTTP/1.1 request as bytes: what the Auth Service reads and sends on to STS unchanged. */
function serialize(headers: Record<string, string>, body: string): string {
  const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}`);
  return `POST / HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n${body}`;
}

/**
 * Signs sts:GetCallerIdentity with the credentials of the AWS default chain (environment, shared
 * config and profile, web identity token file (IRSA), ECS container credentials, EC2 instance
 * profile through IMDSv2), the Auth Service's challenge among the signed headers. STS is not called
 * here: the Auth Service sends the request, so the answer is AWS's, not tbot's.
 */
async function signedRequest(challenge: string, env: NodeJS.ProcessEnv, log: ClientJoinContext['log']) {
  const { host, signingRegion } = endpoint(await awsRegion(env, log), env);
  let signed;
  try {
    signed = await signAwsPost({
      credentials: defaultProvider(),
      region: signingRegion,
      service: 'sts',
      host,
      body: STS_BODY,
      // the wire's content type, which the Auth Service checks (the same as signAwsPost's)
      headers: { 'content-type': STS_CONTENT_TYPE, accept: 'application/json', [CHALLENGE_HEADER]: challenge },
    });
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    throw new MwiError(
      'BAD_CONFIG',
      `no AWS credentials to sign with: ${why} (the AWS default chain: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ` +
        'AWS_PROFILE and ~/.aws, AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, ECS container credentials, or an EC2 ' +
        'instance profile)',
      { field: FIELD, cause },
    );
  }
  return { host, raw: serialize(signed, STS_BODY) };
}

/** Client half of iam: a challenge from the Auth Service, signed into an sts:GetCallerIdentity request. */
export const iamClient: ClientJoinMethod = {
  name: 'iam',
  async payload(ctx): Promise<IamJoinPayload> {
    const ch = (await ctx.challenge({})) as unknown as IamChallenge & { challenge_id: string };
    const { host, raw } = await signedRequest(ch.challenge, process.env, ctx.log);
    ctx.log.info('signed sts:GetCallerIdentity for the Auth Service', { sts_host: host });
    return { challenge_id: ch.challenge_id, sts_request: Buffer.from(raw).toString('base64') };
  },
};
