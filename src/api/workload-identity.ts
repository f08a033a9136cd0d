import { z } from 'zod';
import { parseDuration } from '../util/duration.js';
import { PATHS } from './wire.js';
import { UNSAFE_TEXT, UNSAFE_TEXT_MESSAGE } from './workload-identity-resource.js';

// Workload identity (SPIFFE): the three routes a bot calls over its mTLS identity, and the
// `workload_identity` resource in Teleport's shape (teleport/workloadidentity/v1/resource.proto).

/** Longest TTL any SVID gets, whatever is asked or configured (Teleport's maximum_ttl default). */
export const SVID_MAX_TTL_MS = 24 * 3600_000;
/** TTL of an SVID when the request names none. */
export const SVID_DEFAULT_TTL_MS = 3600_000;

const NAME = z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,127}$/, 'expected a workload_identity name');
const DURATION = z
  .string()
  .max(32)
  .refine((s) => parseDuration(s) !== undefined, 'expected a duration such as 1h or 30m');
/** A bounded string: every attribute ends up in templates, rules and the audit log. */
const text = (max: number) => z.string().max(max, `at most ${max} characters`);
const LABEL_KEY = z.string().min(1).max(253);
const LABEL_VALUE = text(253);

/**
 * Which workload identities a request is for: one by name, or every one whose labels match
 * (`*` as a key or value matches any), as tbot's `selector`.
 */
export const selectorSchema = z
  .object({
    name: NAME.optional(),
    labels: z
      .record(LABEL_KEY, z.array(LABEL_VALUE).min(1).max(16))
      .refine((l) => Object.keys(l).length >= 1 && Object.keys(l).length <= 16, 'between 1 and 16 labels')
      .optional(),
  })
  .strict()
  .refine((s) => (s.name === undefined) !== (s.labels === undefined), 'exactly one of name or labels');
export type Selector = z.infer<typeof selectorSchema>;

const UINT32 = z.number().int().min(0).max(0xffffffff);

/**
 * What tbot attested about the workload (Teleport's attribute names: rules and templates read
 * them as `workload.unix.uid`, ...). The Auth Service trusts the bot's attestation, as Teleport
 * does, but takes only this shape, bounded.
 */
export const workloadAttributesSchema = z
  .object({
    unix: z
      .object({
        attested: z.boolean(),
        pid: z.number().int().min(0).max(0x7fffffff),
        uid: UINT32,
        gid: UINT32,
        binary_path: text(4096).optional(),
        binary_hash: z
          .string()
          .regex(/^[0-9a-f]{64}$/, 'expected a sha256 in lowercase hex')
          .optional(),
      })
      .strict()
      .optional(),
    kubernetes: z
      .object({
        attested: z.boolean(),
        namespace: text(253),
        service_account: text(253),
        pod_name: text(253),
        pod_uid: text(64),
        labels: z
          .record(LABEL_KEY, LABEL_VALUE)
          .refine((l) => Object.keys(l).length <= 64, 'at most 64 labels')
          .optional(),
      })
      .strict()
      .optional(),
  })
  .strict();
export type WorkloadAttributes = z.infer<typeof workloadAttributesSchema>;

/** POST /v1/workload-identity/x509: X.509-SVIDs for one public key (SPKI PEM, P-256 or Ed25519). */
export const x509SvidRequestSchema = z
  .object({
    selector: selectorSchema,
    public_key: z.string().max(4096),
    ttl: DURATION.optional(),
    attributes: workloadAttributesSchema.optional(),
  })
  .strict();
export type X509SvidRequest = z.input<typeof x509SvidRequestSchema>;

/** JWS algorithms a JWT-SVID may be signed with: ES256 unless the request asks for RS256. */
export const JWT_ALGORITHMS = ['ES256', 'RS256'] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

/** POST /v1/workload-identity/jwt: JWT-SVIDs for the audiences. */
export const jwtSvidRequestSchema = z
  .object({
    selector: selectorSchema,
    audiences: z
      .array(
        z
          .string()
          .min(1)
          .max(256)
          .refine((a) => !UNSAFE_TEXT.test(a), UNSAFE_TEXT_MESSAGE),
      )
      .min(1, 'at least one audience')
      .max(16, 'at most 16 audiences'),
    ttl: DURATION.optional(),
    attributes: workloadAttributesSchema.optional(),
    /** mwi's: the signing algorithm (default ES256). */
    algorithm: z.enum(JWT_ALGORITHMS).optional(),
  })
  .strict();
export type JwtSvidRequest = z.input<typeof jwtSvidRequestSchema>;

/** One JWK of the bundle: public only, with kid, alg and use. */
export type Jwk = Record<string, string> & { kid: string; alg: string; use: string; kty: string };

/** What a validator must trust now: every CA and key, current first. `revision` changes on rotation. */
export interface WorkloadBundle {
  trust_domain: string;
  x509_authorities_pem: string[];
  jwks: { keys: Jwk[] };
  revision: string;
}

export interface X509Svid {
  /** The workload_identity resource it was issued from. */
  name: string;
  spiffe_id: string;
  hint: string;
  /** The leaf certificate (PEM). */
  cert_pem: string;
  expires_at: string;
}

export interface X509SvidResponse {
  svids: X509Svid[];
  bundle: WorkloadBundle;
}

export interface JwtSvid {
  name: string;
  spiffe_id: string;
  hint: string;
  token: string;
  expires_at: string;
}

export interface JwtSvidResponse {
  svids: JwtSvid[];
}

/** The routes' paths (src/api/wire.ts PATHS holds them too). */
export const WORKLOAD_PATHS = {
  x509: PATHS.workloadX509,
  jwt: PATHS.workloadJwt,
  bundle: PATHS.workloadBundle,
} as const;
