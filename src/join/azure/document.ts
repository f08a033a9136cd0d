import { timingSafeEqual } from 'node:crypto';
import { verifyParsedSignedData } from '../../crypto/pkcs7.js';
import { JoinRefusal } from '../types.js';
import { commonName, MAX_INTERMEDIATES, signerNameAllowed, signerUsageProblem, verifyChain } from './chain.js';
import type { AzureTrust } from './config.js';
import { readSignedData, type AttestedData, type AttestedDocument } from './wire.js';

/** What a verified attested document says about the VM. */
export interface VerifiedDocument {
  vmId: string;
  subscriptionId: string;
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_INTERMEDIATE_CHARS = 8 * 1024;

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The intermediates a join sent (base64 DER): at most MAX_INTERMEDIATES, each bounded. */
function intermediatesOf(list: unknown): Buffer[] {
  if (list === undefined) return [];
  if (!Array.isArray(list) || list.length > MAX_INTERMEDIATES)
    throw new JoinRefusal(`intermediates: expected a list of at most ${MAX_INTERMEDIATES} certificates`);
  return list.map((c, i) => {
    if (typeof c !== 'string' || c.length > MAX_INTERMEDIATE_CHARS || !/^[A-Za-z0-9+/]+={0,2}$/.test(c))
      throw new JoinRefusal(`intermediates[${i}]: expected a base64 DER certificate`);
    return Buffer.from(c, 'base64');
  });
}

/**
 * Verifies the attested document IMDS signed for this join, in order: its PKCS#7 signature by
 * the certificate it carries; the nonce in the signed content is this join's challenge (so the
 * document is fresh and for this Auth Service, and a copied one is useless); the signer's name is
 * an allowed one (`metadata.azure.com` or a sovereign cloud's); the signer is an end-entity
 * certificate whose key usage allows signing; the signer chains to a pinned
 * root through the intermediates tbot sent. The VM id and subscription are read from the signed
 * content only. Every refusal is the generic one: nothing about the caller is proven yet.
 */
export async function verifyAttestedDocument(
  attested: Partial<AttestedData> | undefined,
  intermediates: unknown,
  nonce: string,
  trust: AzureTrust,
  now: number,
): Promise<VerifiedDocument> {
  if (attested?.encoding !== 'pkcs7')
    throw new JoinRefusal(`attested_data.encoding ${JSON.stringify(attested?.encoding)} is not pkcs7`);
  let content: Buffer;
  let signer: Buffer;
  try {
    const verified = await verifyParsedSignedData(readSignedData(attested.signature), {
      trust: { signerCheckedByCaller: true },
      signedAttributesOptional: true,
    });
    ({ content } = verified);
    signer = Buffer.from(verified.signer.raw);
  } catch (err) {
    throw new JoinRefusal(`attested document: ${(err as Error).message}`);
  }
  let doc: AttestedDocument;
  try {
    doc = JSON.parse(content.toString('utf8')) as AttestedDocument;
  } catch {
    throw new JoinRefusal('attested document: the signed content is not JSON');
  }
  if (typeof doc !== 'object' || doc === null)
    throw new JoinRefusal('attested document: the signed content is not an object');
  if (typeof doc.nonce !== 'string' || doc.nonce === '') throw new JoinRefusal('attested document has no nonce');
  if (!sameText(doc.nonce, nonce)) throw new JoinRefusal('attested document nonce is not the challenge');
  const cn = commonName(signer);
  if (cn === undefined || !signerNameAllowed(cn, trust.signerNames))
    throw new JoinRefusal(`attested document signer ${JSON.stringify(cn ?? null)} is not an allowed name`);
  const usage = signerUsageProblem(signer);
  if (usage) throw new JoinRefusal(`attested document signer ${JSON.stringify(cn)} may not sign: ${usage}`);
  try {
    verifyChain(signer, intermediatesOf(intermediates), trust.roots, now);
  } catch (err) {
    if (err instanceof JoinRefusal) throw err;
    throw new JoinRefusal(`attested document signer: ${(err as Error).message}`);
  }
  if (typeof doc.subscriptionId !== 'string' || !GUID.test(doc.subscriptionId))
    throw new JoinRefusal('attested document has no subscriptionId');
  if (typeof doc.vmId !== 'string' || !GUID.test(doc.vmId)) throw new JoinRefusal('attested document has no vmId');
  return { vmId: doc.vmId.toLowerCase(), subscriptionId: doc.subscriptionId.toLowerCase() };
}
