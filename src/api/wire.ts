/**
 * Wire messages shared by the Auth Service and its clients (tbot, tctl). JSON over HTTPS.
 * Field names are snake_case, as in the resource files.
 */

/** Name the Auth Service's TLS certificate carries whatever address it is reached on. */
export const AUTH_SERVER_NAME = 'auth.mwi.cluster.local';

export const PATHS = {
  ping: '/v1/ping',
  join: '/v1/join',
  challenge: '/v1/join/challenge',
  renew: '/v1/renew',
  certs: '/v1/certs',
  heartbeat: '/v1/heartbeat',
  endInstance: '/v1/instance/end',
  admin: '/v1/admin',
  /** Workload identity (SPIFFE): src/api/workload-identity.ts has the messages. */
  workloadX509: '/v1/workload-identity/x509',
  workloadJwt: '/v1/workload-identity/jwt',
  workloadBundle: '/v1/workload-identity/bundle',
} as const;

/** First contact: POST /v1/join (no client certificate). */
export interface JoinRequest {
  /** Token name: the secret itself for method `token`. */
  token: string;
  join_method: string;
  /** PEM SubjectPublicKeyInfo of the key tbot generated for its renewable identity. */
  public_key: string;
  /** Requested identity TTL in seconds (capped by the server). */
  ttl_seconds?: number;
  /** Method-specific payload (see src/join/<method>/wire.ts). */
  payload?: unknown;
}

/** POST /v1/join and /v1/renew: the bot's own renewable credential (tbot keeps it as BotCredential). */
export interface BotCredentialResponse {
  cluster_name: string;
  bot_name: string;
  instance_id: string;
  generation: number;
  /** PEM certificate for the key in the request, signed by the user TLS CA. */
  tls_cert: string;
  /** Host TLS CA (verifies the Auth Service) then user TLS CA. */
  tls_ca_certs: string[];
  expires: string;
  renewable: boolean;
  /** Method-specific data from the join (e.g. a bound-keypair join state document). */
  method_data?: Record<string, unknown>;
  /** The join method asks for a refresh join now (e.g. a bound key rotation is due). */
  rejoin_due?: boolean;
}

/** POST /v1/join/challenge: the first step of challenge-response join methods. */
export interface ChallengeRequest {
  token: string;
  join_method: string;
  payload?: unknown;
}

export interface ChallengeResponse {
  challenge_id: string;
  [field: string]: unknown;
}

/** POST /v1/renew over mTLS with the current internal identity. */
export interface RenewRequest {
  public_key: string;
  ttl_seconds?: number;
}

/** POST /v1/certs over mTLS: short-lived credentials for an output, for a key tbot generated. */
export interface CertsRequest {
  public_key: string;
  ttl_seconds?: number;
}

export interface CertsResponse {
  tls_cert: string;
  tls_ca_certs: string[];
  /** OpenSSH user certificate line. */
  ssh_cert: string;
  /** User SSH CA public keys (authorized_keys form). */
  ssh_user_ca_keys: string[];
  /** Host SSH CA public keys, for known_hosts `@cert-authority` lines. */
  ssh_host_ca_keys: string[];
  logins: string[];
  expires: string;
  cluster_name: string;
}

/**
 * POST /v1/instance/end (a bot identity): the bot ends its own instance, which then cannot renew,
 * ask for certificates or heartbeat (it is kept, marked ended, until it expires). tbot sends it
 * when a run that joined cannot keep the identity (memory storage, or a storage write that
 * failed), so that no orphan instance is left.
 */
export interface EndInstanceRequest {
  /** Why, for the audit log (at most 256 characters are kept). */
  reason: string;
}

/** POST /v1/heartbeat over mTLS. Self-reported by tbot and shown as such. */
export interface HeartbeatRequest {
  hostname: string;
  os: string;
  version: string;
  uptime_seconds: number;
  one_shot: boolean;
}

export interface PingResponse {
  cluster_name: string;
  server_version: string;
}

/** Every error response body. */
export interface ErrorBody {
  error: { code: string; message: string };
}

/**
 * Header with a listing's next page token (URI-encoded), so a client can ask for it before
 * reading this page's body.
 */
export const NEXT_PAGE_HEADER = 'x-mwi-next';
