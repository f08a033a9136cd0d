// The Auth Service side tbot's Workload API consumes: the workload-identity wire contract
// (POST /v1/workload-identity/x509, POST /v1/workload-identity/jwt, GET /v1/workload-identity/bundle),
// as the Workload API server needs it.
import type { WorkloadAttributes } from './attest/types.js';

/** Which workload_identity resources to ask for (tbot.yaml `selector`). */
export type Selector = { name: string } | { labels: Record<string, string[]> };

/** The trust bundle: every CA a validator must trust now, and the JWT signing keys. */
export interface Bundle {
  trust_domain: string;
  x509_authorities_pem: string[];
  jwks: { keys: Record<string, unknown>[] };
  /** Changes whenever either set changes (a rotation). */
  revision: string;
}

export interface X509Svid {
  name: string;
  spiffe_id: string;
  hint: string;
  cert_pem: string;
  expires_at: string;
}

export interface JwtSvid {
  name: string;
  spiffe_id: string;
  hint: string;
  token: string;
  expires_at: string;
}

export interface X509Request {
  selector: Selector;
  public_key: string;
  ttl?: string;
  attributes?: WorkloadAttributes;
}

export interface JwtRequest {
  selector: Selector;
  audiences: string[];
  ttl?: string;
  attributes?: WorkloadAttributes;
}

/** Issues SVIDs over the bot's identity. */
export interface WorkloadIssuer {
  /** False until tbot has an identity to ask with (the Workload API answers Unavailable meanwhile). */
  ready(): boolean;
  issueX509Svids(req: X509Request): Promise<{ svids: X509Svid[]; bundle: Bundle }>;
  issueJwtSvids(req: JwtRequest): Promise<{ svids: JwtSvid[] }>;
  workloadBundle(): Promise<Bundle>;
}
