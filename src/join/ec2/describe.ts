import { JoinRefusal } from '../types.js';
import type { InstanceIdentity } from './document.js';
import { child, parseXml, path, textAt, type XmlElement } from './xml.js';

/**
 * The optional `ec2:DescribeInstances` check (a rule naming `aws_role`), as Teleport's ec2 join
 * makes it: the Auth Service assumes the rule's role, asks EC2 in the document's region for the
 * document's instance, and requires the first instance of the first reservation to be that one and
 * `running`. mwi also requires the reservation's owner to be the document's account.
 */

/** What DescribeInstances said of one instance. */
export interface DescribedInstance {
  /** The reservation's `ownerId`: the account the instance belongs to. */
  ownerId: string;
  instanceId: string;
  /** `instanceState/name`: pending, running, shutting-down, terminated, stopping, stopped. */
  state: string;
}

/** The AWS calls the check needs: the seam tests replace (the real one is `awsEc2Api`). */
export interface Ec2Api {
  /**
   * DescribeInstances for `instanceId` in `region`, with the credentials of `roleArn` (assumed
   * with the Auth Service's own); undefined when EC2 lists no such instance. Throws a
   * JoinRefusal saying why when AWS cannot be asked or refuses.
   */
  describeInstance(roleArn: string, region: string, instanceId: string): Promise<DescribedInstance | undefined>;
}

/** An IAM role ARN: its partition and account. */
export const ROLE_ARN = /^arn:(aws|aws-cn|aws-us-gov):iam::(\d{12}):role\/[\w+=,.@/-]{1,512}$/;

/** The partition a region belongs to (its role ARNs and endpoints). */
export function partitionOf(region: string): 'aws' | 'aws-cn' | 'aws-us-gov' {
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  return 'aws';
}

/** The account of a role ARN, or undefined when it is not one. */
export function roleAccount(roleArn: unknown): string | undefined {
  return typeof roleArn === 'string' ? ROLE_ARN.exec(roleArn)?.[2] : undefined;
}

/** Temporary credentials from STS AssumeRole. */
export interface AssumedCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  /** Epoch ms. */
  expiration: number;
}

/** AssumeRole's 200 answer (`AssumeRoleResponse/AssumeRoleResult/Credentials`), or a refusal naming what is missing. */
export function readAssumeRole(body: string): AssumedCredentials {
  let doc: XmlElement;
  try {
    doc = parseXml(body);
  } catch (err) {
    throw new JoinRefusal(`STS AssumeRole answered 200 with something that is not XML (${(err as Error).message})`);
  }
  const creds = doc.name === 'AssumeRoleResponse' ? path(doc, 'AssumeRoleResult', 'Credentials') : undefined;
  const accessKeyId = textAt(creds, 'AccessKeyId');
  const secretAccessKey = textAt(creds, 'SecretAccessKey');
  const sessionToken = textAt(creds, 'SessionToken');
  const expiration = Date.parse(textAt(creds, 'Expiration') ?? '');
  if (!accessKeyId || !secretAccessKey || !sessionToken || Number.isNaN(expiration))
    throw new JoinRefusal(
      'STS AssumeRole answer: no Credentials (AccessKeyId, SecretAccessKey, SessionToken, Expiration)',
    );
  return { accessKeyId, secretAccessKey, sessionToken, expiration };
}

/**
 * DescribeInstances's 200 answer: the first instance of the first reservation (as Teleport reads
 * it), or undefined when there is none; a refusal when the answer is not DescribeInstancesResponse.
 */
export function readDescribeInstances(body: string): DescribedInstance | undefined {
  let doc: XmlElement;
  try {
    doc = parseXml(body);
  } catch (err) {
    throw new JoinRefusal(
      `EC2 DescribeInstances answered 200 with something that is not XML (${(err as Error).message})`,
    );
  }
  if (doc.name !== 'DescribeInstancesResponse')
    throw new JoinRefusal(
      `EC2 DescribeInstances answered 200 with ${doc.name.slice(0, 64)}, not DescribeInstancesResponse`,
    );
  const reservation = child(child(doc, 'reservationSet'), 'item');
  const instance = child(child(reservation, 'instancesSet'), 'item');
  if (!reservation || !instance) return undefined;
  return {
    ownerId: textAt(reservation, 'ownerId') ?? '',
    instanceId: textAt(instance, 'instanceId') ?? '',
    state: textAt(instance, 'instanceState', 'name') ?? '',
  };
}

/**
 * Refuses the join unless EC2, asked as `roleArn`, lists the document's instance, in the
 * document's account, `running` (a stopped or terminated instance's document, or one copied off
 * it, cannot join).
 */
export async function checkInstanceRunning(api: Ec2Api, roleArn: string, id: InstanceIdentity): Promise<void> {
  const m = ROLE_ARN.exec(roleArn);
  if (!m) throw new JoinRefusal(`aws_role ${JSON.stringify(roleArn.slice(0, 200))} is not an IAM role ARN`);
  if (m[1] !== partitionOf(id.region))
    throw new JoinRefusal(
      `aws_role ${roleArn} is not in the partition of region ${id.region} (${partitionOf(id.region)})`,
    );
  const found = await api.describeInstance(roleArn, id.region, id.instanceId);
  const where = `in ${id.region} as ${roleArn}`;
  if (!found || found.instanceId !== id.instanceId)
    throw new JoinRefusal(`EC2 DescribeInstances ${where} does not list instance ${id.instanceId}`);
  if (found.ownerId !== id.accountId)
    throw new JoinRefusal(
      `EC2 instance ${id.instanceId} belongs to account ${JSON.stringify(found.ownerId.slice(0, 20))}, ` +
        `not the document's ${id.accountId}`,
    );
  if (found.state !== 'running')
    throw new JoinRefusal(
      `EC2 instance ${id.instanceId} is ${JSON.stringify(found.state.slice(0, 20))}, not running ` +
        `(DescribeInstances ${where})`,
    );
}
