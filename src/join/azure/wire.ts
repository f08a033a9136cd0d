import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { z } from 'zod';

// What both halves of the `azure` join share: the token spec, the messages, and how the attested
// document IMDS signs is read (parsed only: the Auth Service verifies it, tbot only follows its
// certificate's issuer links).

/** `spec.azure` of a token: Teleport's block has nothing but its `allow` rules. */
export const azureSpec = z.object({}).strict();

/**
 * `allow` rules: Teleport's `subscription` and `resource_groups`, and `tenant` (newer Teleport
 * has it in its rules too). All compared without regard to case: subscriptions and tenants are
 * GUIDs, and Azure treats resource group names case-insensitively.
 */
export const AZURE_ALLOW = {
  subscription: { claim: 'subscription', match: 'case-insensitive' },
  resource_groups: { claim: 'resource_group', match: 'case-insensitive', type: 'strings' },
  tenant: { claim: 'tenant', match: 'case-insensitive' },
} as const;

/** A rule names a subscription or a tenant (Teleport skips rules with neither; mwi refuses them at creation). */
export const AZURE_REQUIRED = [['subscription', 'tenant']] as const;

/** The resource the managed identity access token is asked for, and the audience it then carries. */
export const AZURE_TOKEN_RESOURCE = 'https://management.azure.com/';

/** What tbot receives from POST /v1/join/challenge. */
export interface AzureChallenge {
  challenge_id: string;
  /** The nonce IMDS must sign into the attested document: 32 characters, [0-9a-f]. */
  nonce: string;
}

/** IMDS's answer to GET /metadata/attested/document, as it came. */
export interface AttestedData {
  encoding: string;
  /** base64 of a DER PKCS#7 SignedData whose content is the attested JSON document. */
  signature: string;
}

/** Join payload. */
export interface AzureJoinPayload {
  challenge_id: string;
  attested_data: AttestedData;
  /**
   * base64 DER certificates between the document's signing certificate and its root, fetched by
   * tbot from the certificate's issuer links (the Auth Service fetches nothing a caller names).
   */
  intermediates: string[];
  /** The managed identity's access token for AZURE_TOKEN_RESOURCE. */
  access_token: string;
}

/**
 * The attested document's fields mwi reads (Azure's names). Read only from the signed content of
 * the PKCS#7 structure, never from anything beside it.
 */
export interface AttestedDocument {
  nonce?: unknown;
  vmId?: unknown;
  subscriptionId?: unknown;
  timeStamp?: { createdOn?: unknown; expiresOn?: unknown };
}

/** Largest attested document signature accepted, as base64 (IMDS's are about 4 to 8 KiB). */
export const MAX_SIGNATURE_CHARS = 32 * 1024;

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * The PKCS#7 SignedData of an attested document's `signature` (base64 DER). Parsing only: says
 * nothing about who signed it. Throws an Error saying what is malformed.
 */
export function readSignedData(signature: unknown): pkijs.SignedData {
  if (typeof signature !== 'string' || signature.length === 0) throw new Error('no signature');
  const text = signature.replace(/\s+/g, '');
  if (text.length > MAX_SIGNATURE_CHARS) throw new Error(`signature over ${MAX_SIGNATURE_CHARS} characters`);
  if (!BASE64.test(text) || text.length % 4 !== 0) throw new Error('signature is not base64');
  const der = Buffer.from(text, 'base64');
  const asn = asn1js.fromBER(new Uint8Array(der));
  if (asn.offset === -1) throw new Error('signature is not DER');
  let info: pkijs.ContentInfo;
  try {
    info = new pkijs.ContentInfo({ schema: asn.result });
  } catch {
    throw new Error('signature is not a PKCS#7 ContentInfo');
  }
  if (info.contentType !== pkijs.ContentInfo.SIGNED_DATA) throw new Error('signature is not a PKCS#7 SignedData');
  try {
    return new pkijs.SignedData({ schema: info.content });
  } catch {
    throw new Error('malformed PKCS#7 SignedData');
  }
}

/** The certificate a SignedData's (first) signer names by issuer and serial number, if it carries it. */
export function signerCertificate(sd: pkijs.SignedData): pkijs.Certificate | undefined {
  const sid: unknown = sd.signerInfos[0]?.sid;
  if (!(sid instanceof pkijs.IssuerAndSerialNumber)) return undefined;
  return sd.certificates?.find(
    (c): c is pkijs.Certificate =>
      c instanceof pkijs.Certificate && c.issuer.isEqual(sid.issuer) && c.serialNumber.isEqual(sid.serialNumber),
  );
}

/** A pkijs certificate as DER. */
export function certificateDer(cert: pkijs.Certificate): Buffer {
  return Buffer.from(cert.toSchema().toBER(false));
}
