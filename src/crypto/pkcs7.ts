import { webcrypto, X509Certificate } from 'node:crypto';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { MwiError } from '../errors.js';

/**
 * PKCS#7 / CMS SignedData verification (RFC 5652) with attached content and signed attributes:
 * the form AWS signs EC2 instance identity documents in (`rsa2048`) and Azure its attested data.
 * The signer is decided by the caller, never by the document: either one pinned certificate (the
 * document's own certificates are ignored, so a document cannot bring its own signer), or trust
 * anchors the signer's certificate must chain to, or (the azure join, which has its own chain and
 * name rules) the certificate the document carries, returned for the caller to judge.
 */

pkijs.setEngine('node', new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as unknown as Crypto }));

const OID = {
  signedData: '1.2.840.113549.1.7.2',
  data: '1.2.840.113549.1.7.1',
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  signingTime: '1.2.840.113549.1.9.5',
};

/** Digests a signature may use (no SHA-1), with their lengths. */
const DIGESTS: Readonly<Record<string, { name: string; bytes: number }>> = {
  '2.16.840.1.101.3.4.2.1': { name: 'SHA-256', bytes: 32 },
  '2.16.840.1.101.3.4.2.2': { name: 'SHA-384', bytes: 48 },
  '2.16.840.1.101.3.4.2.3': { name: 'SHA-512', bytes: 64 },
};

/** Signature algorithms accepted: RSA (PKCS#1 v1.5) and ECDSA with the digests above. */
const SIGNATURES = new Set([
  '1.2.840.113549.1.1.1', // rsaEncryption (the digest named by digestAlgorithm)
  '1.2.840.113549.1.1.11',
  '1.2.840.113549.1.1.12',
  '1.2.840.113549.1.1.13',
  '1.2.840.10045.4.3.2',
  '1.2.840.10045.4.3.3',
  '1.2.840.10045.4.3.4',
]);

/**
 * Signature algorithms some signers (Azure's attested documents) write where a SignerInfo wants its
 * digest algorithm, with the digest each stands for. The field is not covered by the signature;
 * the signature algorithm itself is checked as written.
 */
const DIGEST_OF_SIGNATURE: Readonly<Record<string, string>> = {
  '1.2.840.113549.1.1.11': '2.16.840.1.101.3.4.2.1', // sha256WithRSAEncryption -> sha256
  '1.2.840.113549.1.1.12': '2.16.840.1.101.3.4.2.2', // sha384WithRSAEncryption -> sha384
  '1.2.840.113549.1.1.13': '2.16.840.1.101.3.4.2.3', // sha512WithRSAEncryption -> sha512
};

/** DSA, which WebCrypto (and so this module) cannot verify: named in the refusal. */
const DSA = new Set(['1.2.840.10040.4.1', '1.2.840.10040.4.3', '2.16.840.1.101.3.4.3.1', '2.16.840.1.101.3.4.3.2']);

/** Why a document was refused: stable, for callers that answer some differently (e.g. DSA). */
export type SignedDataProblem = 'malformed' | 'unsupported' | 'dsa' | 'untrusted-signer' | 'bad-signature';

/** A refused document: BAD_REQUEST with the problem and what exactly is wrong. */
export class SignedDataError extends MwiError {
  constructor(
    readonly problem: SignedDataProblem,
    message: string,
  ) {
    super('BAD_REQUEST', `pkcs7: ${message}`);
    this.name = 'SignedDataError';
  }
}

/**
 * Who may have signed: one pinned certificate, a chain to one of these roots, or the certificate
 * the document carries for its signer. That last says only that this certificate's key signed:
 * the caller must then decide whether the returned `signer` may speak (its chain, its name) before
 * it believes anything in the content.
 */
export type SignedDataTrust =
  | { certificate: X509Certificate }
  | {
      roots: readonly X509Certificate[];
      /** Certificates besides the document's own that may complete the chain. */
      intermediates?: readonly X509Certificate[];
      /** When the chain must be valid (default now). */
      at?: Date;
    }
  | { signerCheckedByCaller: true };

export interface VerifySignedDataOptions {
  trust: SignedDataTrust;
  /** The encapsulated content type required (default id-data). */
  contentType?: string;
  /** Longest document accepted, in bytes (default 64 KiB). */
  maxBytes?: number;
  /**
   * Accept id-data signed without signed attributes, the signature then over the content itself
   * (RFC 5652 5.3 allows it; the azure join does). Default false: AWS's documents always carry them.
   */
  signedAttributesOptional?: boolean;
}

/** What a verified document says, all of it covered by the signature. */
export interface VerifiedSignedData {
  /** The encapsulated content, byte for byte as signed. */
  content: Buffer;
  /** The signer's certificate (the pinned one, the chain's leaf, or the one the document carries). */
  signer: X509Certificate;
  /** The signing-time signed attribute, if the document has one. */
  signingTime?: Date;
  digest: string;
}

const malformed = (what: string) => new SignedDataError('malformed', what);

/** Pinned certificates are parsed once (they are the same objects at every join). */
const parsed = new WeakMap<X509Certificate, pkijs.Certificate>();

function toPkijs(cert: X509Certificate): pkijs.Certificate {
  let p = parsed.get(cert);
  if (!p) parsed.set(cert, (p = pkijs.Certificate.fromBER(new Uint8Array(cert.raw))));
  return p;
}

function fromPkijs(cert: pkijs.Certificate): X509Certificate {
  return new X509Certificate(Buffer.from(cert.toSchema().toBER(false)));
}

/** The ContentInfo's SignedData, parsed strictly: one BER value, nothing after it. */
function parseSignedData(der: Uint8Array): pkijs.SignedData {
  const asn = asn1js.fromBER(der);
  if (asn.offset === -1) throw malformed(`not BER (${asn.result.error || 'unreadable'})`);
  if (asn.offset !== der.length) throw malformed(`${der.length - asn.offset} bytes after the document`);
  let info: pkijs.ContentInfo;
  try {
    info = new pkijs.ContentInfo({ schema: asn.result });
  } catch {
    throw malformed('not a CMS ContentInfo');
  }
  if (info.contentType !== OID.signedData) throw malformed(`content type ${info.contentType}, not SignedData`);
  try {
    return new pkijs.SignedData({ schema: info.content });
  } catch {
    throw malformed('not a SignedData');
  }
}

/** The one value of the signed attribute `type`; absent, repeated or multi-valued is refused. */
function attribute(attrs: pkijs.Attribute[], type: string, name: string): asn1js.AsnType | undefined {
  const found = attrs.filter((a) => a.type === type);
  if (found.length > 1) throw malformed(`signed attribute ${name} given ${found.length} times`);
  if (found.length === 0) return undefined;
  if (found[0]!.values.length !== 1) throw malformed(`signed attribute ${name} has ${found[0]!.values.length} values`);
  return found[0]!.values[0] as asn1js.AsnType;
}

/** The attached content: an OCTET STRING (primitive or constructed), the very bytes pkijs verifies. */
function attachedContent(sd: pkijs.SignedData): Buffer {
  const e = sd.encapContentInfo.eContent;
  if (!e || e.idBlock.tagClass !== 1 || e.idBlock.tagNumber !== 4)
    throw malformed('no attached content (a detached signature)');
  return Buffer.from(e.getValue());
}

/** The checks made before any signature is computed: one signer, attached content, known algorithms. */
function checkShape(sd: pkijs.SignedData, contentType: string, signedAttributesOptional: boolean) {
  if (sd.signerInfos.length !== 1) throw malformed(`expected one signer, found ${sd.signerInfos.length}`);
  const si = sd.signerInfos[0]!;
  const sig = si.signatureAlgorithm.algorithmId;
  if (DSA.has(sig)) throw new SignedDataError('dsa', `signed with DSA (${sig}), which is not verified here`);
  if (!SIGNATURES.has(sig)) throw new SignedDataError('unsupported', `signature algorithm ${sig} is not accepted`);
  const named = DIGEST_OF_SIGNATURE[si.digestAlgorithm.algorithmId];
  if (named) si.digestAlgorithm = new pkijs.AlgorithmIdentifier({ algorithmId: named });
  const digest = DIGESTS[si.digestAlgorithm.algorithmId];
  if (!digest) throw new SignedDataError('unsupported', `digest ${si.digestAlgorithm.algorithmId} is not accepted`);
  const content = attachedContent(sd);
  if (sd.encapContentInfo.eContentType !== contentType)
    throw malformed(`encapsulated content type ${sd.encapContentInfo.eContentType}, not ${contentType}`);
  const attrs = si.signedAttrs?.attributes;
  // RFC 5652 5.3: signed attributes may be left out only for id-data; the signature then covers the content itself
  if (!attrs) {
    if (!signedAttributesOptional || contentType !== OID.data) throw malformed('no signed attributes');
    return { si, digest: digest.name, content, signingTime: undefined };
  }
  // the signature covers the signed attributes, which must bind the content type and its digest
  const ct = attribute(attrs, OID.contentType, 'content-type');
  if (!(ct instanceof asn1js.ObjectIdentifier) || ct.valueBlock.toString() !== contentType)
    throw malformed('the content-type signed attribute is missing or not the encapsulated content type');
  const md = attribute(attrs, OID.messageDigest, 'message-digest');
  if (!(md instanceof asn1js.OctetString) || md.valueBlock.valueHexView.length !== digest.bytes)
    throw malformed(`the message-digest signed attribute is missing or not a ${digest.name} digest`);
  const st = attribute(attrs, OID.signingTime, 'signing-time');
  const signingTime = st instanceof asn1js.UTCTime || st instanceof asn1js.GeneralizedTime ? st.toDate() : undefined;
  return { si, digest: digest.name, content, signingTime };
}

/**
 * A SignedData read (once) and not yet verified: `unverifiedContent` only serves to choose how to
 * verify it (e.g. which region's certificate), never to trust what it says; `verify` returns the
 * content it verified.
 */
export interface ReadSignedData {
  unverifiedContent: Buffer;
  verify(opts: Omit<VerifySignedDataOptions, 'maxBytes'>): Promise<VerifiedSignedData>;
}

/** Reads a DER or BER SignedData (see verifySignedData for what is checked, and when). */
export function readSignedData(der: Uint8Array, maxBytes = 64 * 1024): ReadSignedData {
  if (der.length === 0 || der.length > maxBytes) throw malformed(`${der.length} bytes (expected 1 to ${maxBytes})`);
  const sd = parseSignedData(der);
  return { unverifiedContent: attachedContent(sd), verify: (opts) => verifyParsedSignedData(sd, opts) };
}

/**
 * Verifies a DER or BER SignedData with attached content against `trust` and returns its content.
 * Checked: one well-formed BER value; content type SignedData; exactly one signer; a content type
 * (default id-data) and attached content; signed attributes (which id-data may go without if the
 * caller allows) with exactly one content-type equal to it and one message-digest of the content;
 * RSA or ECDSA with SHA-256/384/512 (DSA is refused as such: WebCrypto cannot verify it; a
 * signature algorithm in the digest field stands for its hash); the signature by the pinned
 * certificate, by a certificate chaining to a root, or by the certificate the document carries
 * (for the caller to judge). Anything else throws a SignedDataError naming what is wrong.
 *
 * @example
 * const { content } = await verifySignedData(der, { trust: { certificate: awsRegionCert } });
 */
export async function verifySignedData(der: Uint8Array, opts: VerifySignedDataOptions): Promise<VerifiedSignedData> {
  return readSignedData(der, opts.maxBytes).verify(opts);
}

/**
 * verifySignedData for a SignedData the caller parsed itself (the azure join reads its document
 * where tbot reads it too). The structure may be changed (its signer's digest field, its
 * certificates): parse it again to use it afterwards.
 */
export async function verifyParsedSignedData(
  sd: pkijs.SignedData,
  opts: Omit<VerifySignedDataOptions, 'maxBytes'>,
): Promise<VerifiedSignedData> {
  const shape = checkShape(sd, opts.contentType ?? OID.data, opts.signedAttributesOptional ?? false);
  const t = opts.trust;
  // the document's own certificates never decide who signed unless the caller judges the signer
  // itself: replaced by the pinned one, or offered as chain candidates only
  if ('certificate' in t) sd.certificates = [toPkijs(t.certificate)];
  else if ('roots' in t) sd.certificates = [...(sd.certificates ?? []), ...(t.intermediates ?? []).map(toPkijs)];
  let result: { signatureVerified?: boolean | null; signerCertificate?: pkijs.Certificate | null };
  try {
    result = await sd.verify({
      signer: 0,
      extendedMode: true,
      ...('roots' in t
        ? { checkChain: true, trustedCerts: t.roots.map(toPkijs), checkDate: t.at ?? new Date() }
        : { checkChain: false }),
    });
  } catch (err) {
    const code = (err as { code?: number }).code;
    const message = err instanceof Error ? err.message : String(err);
    if (code === 3 && 'signerCheckedByCaller' in t)
      throw new SignedDataError('untrusted-signer', "the document does not carry its signer's certificate");
    if (code === 3) throw new SignedDataError('untrusted-signer', 'not signed by the trusted certificate');
    if (code === 5) throw new SignedDataError('untrusted-signer', `the signer does not chain to a trusted root`);
    if (/digest doesn't match/i.test(message))
      throw new SignedDataError(
        'bad-signature',
        'the signature does not verify: the content does not match the signed message digest',
      );
    throw new SignedDataError('bad-signature', `the signature does not verify: ${message}`);
  }
  if (result.signatureVerified !== true || !result.signerCertificate)
    throw new SignedDataError('bad-signature', 'the signature does not verify');
  return {
    content: shape.content,
    signer: 'certificate' in t ? t.certificate : fromPkijs(result.signerCertificate),
    digest: shape.digest,
    ...(shape.signingTime ? { signingTime: shape.signingTime } : {}),
  };
}
