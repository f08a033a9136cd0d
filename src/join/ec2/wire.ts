/**
 * The `ec2` join: tbot sends the instance identity document AWS signed (the RSA-2048 PKCS#7 form,
 * read through IMDSv2); the Auth Service verifies it against AWS's certificate for the document's
 * region and reads the identity from the signed content only.
 */

/** Where IMDS serves the RSA-2048 PKCS#7 document (base64, as sent). */
export const IID_PATH = '/latest/dynamic/instance-identity/rsa2048';

/** The join payload. */
export interface Ec2JoinPayload {
  /** The base64 PKCS#7 exactly as IMDS served it (line breaks allowed). */
  document: string;
}

/** How old a document may be (from the instance's `pendingTime`), unless the token says: Teleport's default. */
export const DEFAULT_IID_TTL = '5m';
