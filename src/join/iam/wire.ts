/**
 * The `iam` join (AWS IAM): tbot signs an sts:GetCallerIdentity request with SigV4 and sends the
 * raw signed request instead of calling AWS; the Auth Service checks it and sends it to STS
 * itself, so the answer (which AWS account, which role) comes from AWS, not from tbot.
 */

/** The only body an iam join may present: sts:GetCallerIdentity, form-encoded, byte for byte. */
export const STS_BODY = 'Action=GetCallerIdentity&Version=2011-06-15';

/** The content type STS needs to read that body. */
export const STS_CONTENT_TYPE = 'application/x-www-form-urlencoded; charset=utf-8';

/**
 * The header that carries the Auth Service's challenge: among the SignedHeaders, so that a signed
 * request answers one challenge only (AWS ignores it, and checks the signature over it).
 */
export const CHALLENGE_HEADER = 'x-mwi-challenge';

/** What tbot gets back from POST /v1/join/challenge (besides `challenge_id`). */
export interface IamChallenge {
  /** 32 random bytes, base64url: the value of the challenge header. */
  challenge: string;
}

/** The join payload. */
export interface IamJoinPayload {
  challenge_id: string;
  /** The signed HTTP/1.1 request (request line, headers, body), base64. */
  sts_request: string;
}

/** AWS's commercial regions with a regional STS endpoint. */
const REGIONS = [
  'us-east-1',
  'us-east-2',
  'us-west-1',
  'us-west-2',
  'af-south-1',
  'ap-east-1',
  'ap-east-2',
  'ap-south-1',
  'ap-south-2',
  'ap-southeast-1',
  'ap-southeast-2',
  'ap-southeast-3',
  'ap-southeast-4',
  'ap-southeast-5',
  'ap-southeast-7',
  'ap-northeast-1',
  'ap-northeast-2',
  'ap-northeast-3',
  'ca-central-1',
  'ca-west-1',
  'eu-central-1',
  'eu-central-2',
  'eu-west-1',
  'eu-west-2',
  'eu-west-3',
  'eu-south-1',
  'eu-south-2',
  'eu-north-1',
  'il-central-1',
  'me-south-1',
  'me-central-1',
  'mx-central-1',
  'sa-east-1',
];
export const GOVCLOUD = ['us-gov-east-1', 'us-gov-west-1'];
const CHINA = ['cn-north-1', 'cn-northwest-1'];
/** Regions with a separate FIPS endpoint (`sts-fips.REGION`); GovCloud's regional ones are FIPS endpoints. */
export const FIPS_REGIONS = ['us-east-1', 'us-east-2', 'us-west-1', 'us-west-2'];

/** Every region with an STS endpoint: commercial, GovCloud, China. */
export const STS_REGIONS: readonly string[] = [...REGIONS, ...GOVCLOUD, ...CHINA];

/** The regular endpoint of `region`'s STS (the global one without a region). */
export function stsHost(region: string | undefined): string {
  if (!region) return 'sts.amazonaws.com';
  return CHINA.includes(region) ? `sts.${region}.amazonaws.com.cn` : `sts.${region}.amazonaws.com`;
}

/** The FIPS endpoint of `region`'s STS (us-east-1's without a region), undefined where AWS has none. */
export function stsFipsHost(region: string | undefined): string | undefined {
  const r = region ?? 'us-east-1';
  if (GOVCLOUD.includes(r)) return stsHost(r);
  return FIPS_REGIONS.includes(r) ? `sts-fips.${r}.amazonaws.com` : undefined;
}
