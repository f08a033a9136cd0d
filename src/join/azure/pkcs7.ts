import * as pkijs from 'pkijs';
import { certificateDer } from './wire.js';

const ID_DATA = '1.2.840.113549.1.7.1';

/**
 * Signature algorithms some signers (Azure's attested documents) write where a SignerInfo wants
 * its digest algorithm, with the digest each stands for. The field is not covered by the
 * signature; the signature algorithm itself is checked as written.
 */
const DIGEST_FOR_SIGNATURE: Readonly<Record<string, string>> = {
  '1.2.840.113549.1.1.11': '2.16.840.1.101.3.4.2.1', // sha256WithRSAEncryption -> sha256
  '1.2.840.113549.1.1.12': '2.16.840.1.101.3.4.2.2', // sha384WithRSAEncryption -> sha384
  '1.2.840.113549.1.1.13': '2.16.840.1.101.3.4.2.3', // sha512WithRSAEncryption -> sha512
};

/**
 * Verifies a PKCS#7 (CMS) SignedData with attached content: exactly one signer, content type
 * id-data, the signer's certificate among those the structure carries, and its signature over
 * the content (or over signed attributes whose message digest is the content's). Returns the
 * content, which is the only part of the structure a caller may read anything from, and the
 * signer's certificate (DER). Says nothing about who the signer is: the caller checks the
 * certificate (its chain, its name). Throws an Error with the reason otherwise.
 */
export async function verifySignedData(sd: pkijs.SignedData): Promise<{ content: Buffer; signer: Buffer }> {
  if (sd.signerInfos.length !== 1) throw new Error(`expected one signer, found ${sd.signerInfos.length}`);
  if (sd.encapContentInfo.eContentType !== ID_DATA)
    throw new Error(`content type ${sd.encapContentInfo.eContentType} is not id-data`);
  const e = sd.encapContentInfo.eContent;
  // an OCTET STRING (primitive or constructed): the very bytes pkijs verifies as the content
  if (!e || e.idBlock.tagClass !== 1 || e.idBlock.tagNumber !== 4) throw new Error('no attached content');
  const content = Buffer.from(e.getValue());
  const signerInfo = sd.signerInfos[0]!;
  const digest = DIGEST_FOR_SIGNATURE[signerInfo.digestAlgorithm.algorithmId];
  if (digest) signerInfo.digestAlgorithm = new pkijs.AlgorithmIdentifier({ algorithmId: digest });
  let result: pkijs.SignedDataVerifyResult;
  try {
    // pkijs throws on a wrong message digest, and returns signatureVerified false on a bad signature
    result = await sd.verify({ signer: 0, checkChain: false, extendedMode: true });
  } catch (err) {
    const why = (err as { message?: string }).message ?? String(err);
    throw new Error(`signature does not verify: ${why}`, { cause: err });
  }
  if (result.signatureVerified !== true || !result.signerCertificate) throw new Error('signature does not verify');
  return { content, signer: certificateDer(result.signerCertificate) };
}
