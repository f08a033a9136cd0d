import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { Agent, request } from 'node:https';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { signAwsPost } from '../../crypto/aws-sigv4.js';
import { boundedRequest } from '../../util/bounded-request.js';
import { JoinRefusal } from '../types.js';
import {
  partitionOf,
  readAssumeRole,
  readDescribeInstances,
  type AssumedCredentials,
  type DescribedInstance,
  type Ec2Api,
} from './describe.js';
import { errorCode } from './xml.js';

/** AWS credentials to sign with. */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string | undefined;
}

/** Where the Auth Service's own credentials come from (the AWS default chain unless a test gives its own). */
export type CredentialSource = () => Promise<AwsCredentials>;

/** How the client reaches AWS. */
export interface AwsEc2ApiOptions {
  /** Testing: every request goes to this https URL instead, still naming (and signed for) its AWS host. */
  forward?: { url: URL; ca?: string | undefined } | undefined;
  /** The Auth Service's credentials; default: the AWS SDK's default chain, created on first use. */
  credentials?: CredentialSource;
  /** The clock (epoch ms), for the credentials' expiry. */
  now?: () => number;
  /** Time for each answer, in ms (default AWS_TIMEOUT_MS; tests shorten it). */
  timeoutMs?: number;
}

/** Time for each AWS answer. */
export const AWS_TIMEOUT_MS = 10_000;
/** Largest answer read: a one-instance DescribeInstances answer is a few KiB. */
export const MAX_AWS_ANSWER = 256 * 1024;
/** Assumed credentials are used until this long before they expire, then assumed again. */
export const REFRESH_BEFORE_MS = 5 * 60_000;
/** How long a failed AssumeRole is the answer for the joins that follow, before STS is asked again. */
export const FAILURE_HELD_MS = 15_000;

/** An AssumeRole call of one (role, region): in flight, answered, or failed (when, and why). */
interface HeldCall {
  call: Promise<AssumedCredentials>;
  failedAt?: number;
  error?: unknown;
}
/** How long the assumed credentials are asked for (STS's minimum is 15 minutes). */
const ASSUME_SECONDS = 3600;
const ROLE_SESSION_NAME = 'mwi-ec2-join';

/** The endpoint host of `service` (sts, ec2) in `region`: China's end in amazonaws.com.cn. */
export function awsHost(service: 'sts' | 'ec2', region: string): string {
  return `${service}.${region}.amazonaws.com${partitionOf(region) === 'aws-cn' ? '.cn' : ''}`;
}

/** The options and the keep-alive connections of one client. */
type Connection = AwsEc2ApiOptions & { agent: Agent };

interface Answer {
  status: number;
  body: string;
}

/** POSTs a form body to `host` over https: bounded in time and size, no redirect followed. */
async function post(host: string, headers: Record<string, string>, body: string, o: Connection): Promise<Answer> {
  const to = o.forward?.url;
  const toHost = to?.hostname.replace(/^\[|\]$/g, '');
  const ms = o.timeoutMs ?? AWS_TIMEOUT_MS;
  const a = await boundedRequest(
    request,
    {
      host: toHost ?? host,
      port: to?.port ? Number(to.port) : 443,
      // a forward_url is checked against its own name (by default Node checks the Host header's)
      ...(to
        ? { checkServerIdentity: (_: string, cert: PeerCertificate) => checkServerIdentity(toHost!, cert) }
        : { servername: host }),
      ...(o.forward?.ca ? { ca: o.forward.ca } : {}),
      method: 'POST',
      path: '/',
      headers,
      agent: o.agent,
    },
    body,
    // the whole answer, not only each silence: a slow drip is cut off too
    { idleMs: ms, totalMs: ms, maxBytes: MAX_AWS_ANSWER, tooLong: `answer longer than ${MAX_AWS_ANSWER / 1024} KiB` },
  );
  return { status: a.status, body: a.body.toString('utf8') };
}

/** Signs (SigV4) and sends one Query API call; a refusal naming the call when AWS cannot be asked. */
async function call(
  what: string,
  service: 'sts' | 'ec2',
  region: string,
  creds: AwsCredentials,
  params: Record<string, string>,
  o: Connection,
): Promise<Answer> {
  const host = awsHost(service, region);
  const body = new URLSearchParams(params).toString();
  const headers = await signAwsPost({ credentials: creds, region, service, host, body });
  try {
    return await post(host, headers, body, o);
  } catch (err) {
    throw new JoinRefusal(`${what} at ${host} not reached: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** A non-200 answer as a refusal: the status and AWS's error code. */
function failed(what: string, a: Answer): JoinRefusal {
  const code = errorCode(a.body);
  return new JoinRefusal(`${what} answered HTTP ${a.status}${code ? ` (${code})` : ''}`);
}

/**
 * The real Ec2Api: STS AssumeRole with the Auth Service's own credentials (the AWS default chain:
 * environment, shared config, web identity, ECS, IMDS), then EC2 DescribeInstances with the
 * assumed ones, both signed with SigV4 and sent over https to the regional endpoints of the
 * document's region. The assumed credentials of each role are kept until shortly before they
 * expire: one AssumeRole per role, not per join (concurrent joins share one call; a failed call is
 * not kept).
 */
export function awsEc2Api(options: AwsEc2ApiOptions = {}): Ec2Api {
  // connections are kept open between joins (idle ones for 5 s, well under AWS's idle timeout): few handshakes
  const o: Connection = { ...options, agent: new Agent({ keepAlive: true, maxSockets: 64, timeout: 5000 }) };
  const now = o.now ?? Date.now;
  let own: CredentialSource | undefined = o.credentials;
  const assumed = new Map<string, HeldCall>();

  async function ownCredentials(): Promise<AwsCredentials> {
    own ??= defaultProvider();
    try {
      return await own();
    } catch (err) {
      throw new JoinRefusal(
        `the Auth Service has no AWS credentials to assume aws_role with (the AWS default chain: ` +
          `${err instanceof Error ? err.message : String(err)})`,
      );
    }
  }

  async function assume(roleArn: string, region: string): Promise<AssumedCredentials> {
    const what = `STS AssumeRole of ${roleArn}`;
    const a = await call(
      what,
      'sts',
      region,
      await ownCredentials(),
      {
        Action: 'AssumeRole',
        Version: '2011-06-15',
        RoleArn: roleArn,
        RoleSessionName: ROLE_SESSION_NAME,
        DurationSeconds: String(ASSUME_SECONDS),
      },
      o,
    );
    if (a.status !== 200) throw failed(what, a);
    return readAssumeRole(a.body);
  }

  /**
   * The role's credentials, per (role, region): AssumeRole goes to the region's STS, so a region
   * whose STS is slow holds back that region's joins only. Every join waiting on a call shares its
   * answer, a failure included, and a failure is given to the joins of the next FAILURE_HELD_MS
   * too: during an STS outage N joins make one call, not N calls one after another.
   */
  async function credentialsOf(roleArn: string, region: string): Promise<AssumedCredentials> {
    const key = `${roleArn} ${region}`;
    const held = assumed.get(key);
    if (held) {
      if (held.failedAt === undefined) {
        const c = await held.call;
        if (c.expiration - REFRESH_BEFORE_MS > now()) return c;
      } else if (now() - held.failedAt < FAILURE_HELD_MS) throw held.error;
      if (assumed.get(key) !== held) return credentialsOf(roleArn, region);
    }
    const entry: HeldCall = { call: assume(roleArn, region) };
    entry.call.catch((err: unknown) => {
      entry.failedAt = now();
      entry.error = err;
    });
    assumed.set(key, entry);
    return entry.call;
  }

  return {
    async describeInstance(roleArn, region, instanceId): Promise<DescribedInstance | undefined> {
      const creds = await credentialsOf(roleArn, region);
      const what = 'EC2 DescribeInstances';
      const a = await call(
        what,
        'ec2',
        region,
        creds,
        { Action: 'DescribeInstances', Version: '2016-11-15', 'InstanceId.1': instanceId },
        o,
      );
      // an instance id EC2 does not know (in the role's account and this region) is an error there
      if (a.status === 400 && errorCode(a.body) === 'InvalidInstanceID.NotFound') return undefined;
      if (a.status !== 200) throw failed(what, a);
      return readDescribeInstances(a.body);
    },
  };
}
