import { X509Certificate } from 'node:crypto';
import { MwiError } from '../../errors.js';
import { certificateDer, readSignedData, signerCertificate, type AttestedData } from './wire.js';

/** Azure's Instance Metadata Service, as every VM reaches it. */
export const IMDS_DEFAULT = 'http://169.254.169.254/metadata';
/** Points tbot at another IMDS (a test stand-in): a base URL in place of IMDS_DEFAULT. */
export const IMDS_ENV = 'TBOT_AZURE_IMDS_ENDPOINT';
/** The oldest API version tbot uses (Teleport's minimum); it picks the newest the VM offers. */
const MIN_API_VERSION = '2019-06-04';
const MAX_ANSWER = 1024 * 1024;
const TIMEOUT_MS = 10_000;
/** Issuer links followed from the signing certificate: Azure's chain has one intermediate. */
const MAX_ISSUERS = 4;

/** A client of IMDS at `base` (IMDS_DEFAULT, or $TBOT_AZURE_IMDS_ENDPOINT). */
export class Imds {
  private version: string | undefined;

  constructor(readonly base: string) {}

  private async get(path: string, query: Record<string, string>, what: string): Promise<Record<string, unknown>> {
    const url = new URL(`${this.base.replace(/\/+$/, '')}${path}`);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    let res: Response;
    try {
      // IMDS answers only requests with this header (and only from the VM itself)
      res = await fetch(url, {
        headers: { Metadata: 'true' },
        redirect: 'error',
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
    } catch (cause) {
      throw new MwiError(
        'UNREACHABLE',
        `cannot reach the Azure Instance Metadata Service at ${this.base} for ${what} (is tbot running on an Azure ` +
          `VM? ${IMDS_ENV} overrides the address)`,
        { cause },
      );
    }
    const text = await res.text();
    if (text.length > MAX_ANSWER) throw new MwiError('UNREACHABLE', `IMDS answered too much for ${what}`);
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      if (res.ok) throw new MwiError('UNREACHABLE', `IMDS answered ${what} with something that is not JSON`);
    }
    if (!res.ok) {
      const why = [body.error, body.error_description].filter((v) => typeof v === 'string').join(': ');
      throw new MwiError('UNREACHABLE', `IMDS refused ${what}: HTTP ${res.status}${why ? ` (${why})` : ''}`);
    }
    return body;
  }

  /** The newest API version this IMDS offers, at least MIN_API_VERSION (asked once). */
  async apiVersion(): Promise<string> {
    if (this.version) return this.version;
    const { apiVersions } = await this.get('/versions', { format: 'json' }, 'its API versions');
    const dates = Array.isArray(apiVersions)
      ? apiVersions.filter((v): v is string => typeof v === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(v)).sort()
      : [];
    const newest = dates[dates.length - 1];
    if (!newest || newest < MIN_API_VERSION)
      throw new MwiError('UNREACHABLE', `IMDS offers no API version from ${MIN_API_VERSION} on (${dates.join(', ')})`);
    return (this.version = newest);
  }

  /** The attested document, signed with `nonce` in it. */
  async attestedDocument(nonce: string): Promise<AttestedData> {
    const api = await this.apiVersion();
    const body = await this.get(
      '/attested/document',
      { 'api-version': api, nonce, format: 'json' },
      'the attested document',
    );
    if (typeof body.encoding !== 'string' || typeof body.signature !== 'string')
      throw new MwiError('UNREACHABLE', 'IMDS sent an attested document without encoding and signature');
    return { encoding: body.encoding, signature: body.signature };
  }

  /**
   * The VM's managed identity's access token for `resource`: the user-assigned identity
   * `clientId`, or the only (system-assigned) one.
   */
  async accessToken(resource: string, clientId: string | undefined): Promise<string> {
    const api = await this.apiVersion();
    const query = { 'api-version': api, resource, ...(clientId ? { client_id: clientId } : {}) };
    let body: Record<string, unknown>;
    try {
      body = await this.get('/identity/oauth2/token', query, 'a managed identity access token');
    } catch (err) {
      if (!(err instanceof MwiError) || !/HTTP 4\d\d/.test(err.message)) throw err;
      throw new MwiError(
        'BAD_CONFIG',
        `${err.message}: give the VM a managed identity (system-assigned, or user-assigned with its client id in ` +
          'onboarding.azure.client_id)',
        { field: 'onboarding.azure.client_id', cause: err },
      );
    }
    if (typeof body.access_token !== 'string') throw new MwiError('UNREACHABLE', 'IMDS sent no access_token');
    return body.access_token;
  }
}

/**
 * Where an issuer link may point: Microsoft's PKI repository (http(s)://www.microsoft.com/
 * pkiops/certs/NAME.crt, where Azure's issuing CAs are published), or the host of an IMDS
 * override (a test stand-in serves its own). The Auth Service fetches nothing: it only checks the
 * chain tbot sends against its pinned roots.
 */
export function issuerUrlAllowed(url: string, override: string | undefined): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  const hostOk = u.hostname === 'www.microsoft.com' || (override !== undefined && u.host === new URL(override).host);
  return (
    (u.protocol === 'http:' || u.protocol === 'https:') && hostOk && /^\/pkiops\/certs\/[^/]+\.crt$/.test(u.pathname)
  );
}

/** The CA Issuers URL of a certificate's Authority Information Access, if it has one. */
function issuerLink(cert: X509Certificate): string | undefined {
  return /CA Issuers - URI:(\S+)/.exec(cert.infoAccess ?? '')?.[1];
}

async function fetchCertificate(url: string): Promise<X509Certificate> {
  const res = await fetch(url, { redirect: 'error', signal: AbortSignal.timeout(TIMEOUT_MS) });
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  const body = Buffer.from(await res.arrayBuffer());
  if (body.length > 64 * 1024) throw new Error('answer too large');
  return new X509Certificate(body); // DER or PEM
}

/**
 * The certificates from the attested document's signer up to (not including) its root, following
 * each certificate's issuer link while it is allowed (issuerUrlAllowed). A link that cannot be
 * followed ends the chain with a warning: the Auth Service then says whether it suffices.
 */
export async function issuingChain(
  attested: AttestedData,
  override: string | undefined,
  warn: (msg: string, fields?: Record<string, unknown>) => void,
): Promise<Buffer[]> {
  let signer: X509Certificate;
  try {
    const sd = readSignedData(attested.signature);
    const leaf = signerCertificate(sd);
    if (!leaf) throw new Error('it carries no signer certificate');
    signer = new X509Certificate(certificateDer(leaf));
  } catch (cause) {
    throw new MwiError('UNREACHABLE', `IMDS sent an attested document tbot cannot read: ${(cause as Error).message}`, {
      cause,
    });
  }
  const chain: Buffer[] = [];
  let cert = signer;
  for (let i = 0; i < MAX_ISSUERS; i++) {
    const url = issuerLink(cert);
    if (!url) break;
    if (!issuerUrlAllowed(url, override)) {
      warn('not following the issuer link of the attested document certificate', { url });
      break;
    }
    let issuer: X509Certificate;
    try {
      issuer = await fetchCertificate(url);
    } catch (err) {
      warn('could not fetch an issuing certificate of the attested document', { url, error: String(err) });
      break;
    }
    // the root is the Auth Service's to pin, never sent
    if (issuer.subject === issuer.issuer && issuer.verify(issuer.publicKey)) break;
    if (chain.some((c) => c.equals(issuer.raw))) break;
    chain.push(issuer.raw);
    cert = issuer;
  }
  return chain;
}
