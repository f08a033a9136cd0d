import { X509Certificate } from 'node:crypto';
import { readSignedData, SignedDataError, type ReadSignedData } from '../../crypto/pkcs7.js';
import { JoinRefusal } from '../types.js';
import { IID_PATH } from './wire.js';

/** What the Auth Service reads of an instance identity document: only from its signed content. */
export interface InstanceIdentity {
  accountId: string;
  region: string;
  instanceId: string;
  /** When the instance last started (epoch ms): the document's age counts from here. */
  pendingTime: number;
  availabilityZone?: string;
  imageId?: string;
  instanceType?: string;
}

/** Longest document accepted (base64 text): AWS's is about 1.5 KiB. */
export const MAX_DOCUMENT = 16 * 1024;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const REGION = /^[a-z]{2}(-[a-z]+)+-\d+$/;

/** The DER of the base64 document IMDS served (its line breaks dropped); strict base64 only. */
export function documentBytes(text: unknown): Buffer {
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_DOCUMENT)
    throw new JoinRefusal(`document: ${typeof text === 'string' ? `${text.length} characters` : 'missing'}`);
  const b64 = text.replace(/\r?\n/g, '');
  if (!BASE64.test(b64)) throw new JoinRefusal('document: not base64 (the rsa2048 document as IMDS serves it)');
  return Buffer.from(b64, 'base64');
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** The identity fields of verified content, each checked for its shape. */
function identityOf(content: Buffer): InstanceIdentity {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(content.toString('utf8')) as Record<string, unknown>;
  } catch {
    throw new JoinRefusal('the signed content is not JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw new JoinRefusal('the signed content is not a JSON object');
  const accountId = str(doc.accountId);
  const region = str(doc.region);
  const instanceId = str(doc.instanceId);
  const pendingTime = Date.parse(str(doc.pendingTime) ?? '');
  if (!accountId || !/^\d{12}$/.test(accountId)) throw new JoinRefusal('signed content: no 12-digit accountId');
  if (!region || !REGION.test(region)) throw new JoinRefusal('signed content: no region');
  if (!instanceId || !/^i-[0-9a-f]{8,32}$/.test(instanceId)) throw new JoinRefusal('signed content: no instanceId');
  if (Number.isNaN(pendingTime)) throw new JoinRefusal('signed content: no pendingTime');
  const optional = ['availabilityZone', 'imageId', 'instanceType'] as const;
  return {
    accountId,
    region,
    instanceId,
    pendingTime,
    ...Object.fromEntries(optional.filter((k) => str(doc[k])).map((k) => [k, str(doc[k])])),
  };
}

/** The refusal for a document pkcs7 refused: DSA documents are told what to send instead. */
function refusal(err: SignedDataError, region: string): JoinRefusal {
  if (err.problem === 'dsa')
    return new JoinRefusal(
      `${err.message} (the /pkcs7 document)`,
      `the join was refused: an ec2 join sends the RSA-2048 instance identity document (${IID_PATH}), not the ` +
        'DSA-signed /pkcs7 one',
    );
  return new JoinRefusal(`${err.message} (region ${region}'s certificate)`);
}

/**
 * Verifies an instance identity document and returns the identity it signs. The region's
 * certificate is chosen by the region the content names; the signature by that certificate is
 * then what makes the content (that region included) true. Identity is read from the signed
 * content only, never from anything sent beside it (a SPIRE attestor once trusted an unsigned
 * field). `certificate` gives the pinned certificate of a region, undefined when none is known.
 */
export async function verifyDocument(
  der: Buffer,
  certificate: (region: string) => X509Certificate | undefined,
): Promise<InstanceIdentity> {
  let doc: ReadSignedData;
  let claimed: string;
  try {
    doc = readSignedData(der);
    claimed = String((JSON.parse(doc.unverifiedContent.toString('utf8')) as { region?: unknown }).region);
  } catch (err) {
    throw new JoinRefusal(`document: ${err instanceof Error ? err.message : String(err)}`);
  }
  const cert = REGION.test(claimed) ? certificate(claimed) : undefined;
  if (!cert)
    throw new JoinRefusal(
      `no AWS RSA-2048 certificate for region ${JSON.stringify(claimed.slice(0, 40))} ` +
        '(mwi.yaml ec2.region_certificates adds one)',
    );
  let content: Buffer;
  try {
    ({ content } = await doc.verify({ trust: { certificate: cert } }));
  } catch (err) {
    if (err instanceof SignedDataError) throw refusal(err, claimed);
    throw err;
  }
  const id = identityOf(content);
  // the certificate was chosen by the content's region: the same bytes, now verified
  if (id.region !== claimed) throw new JoinRefusal('the signed region changed between reads');
  return id;
}
