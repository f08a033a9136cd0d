import { z } from 'zod';

/**
 * Teleport's `tctl get` prints an unset string as `""` and an unset time as `""` or null: both
 * read as absent, so its exports load as they are.
 */
const unset = (v: unknown): unknown => (v === '' || v === null ? undefined : v);
const TIME = z.preprocess(
  unset,
  z
    .string()
    .refine((s) => !Number.isNaN(Date.parse(s)), 'expected an RFC 3339 time')
    .optional(),
);

/** `spec.bound_keypair` of a bound_keypair token (Teleport's field names). */
export const boundKeypairSpec = z
  .object({
    onboarding: z
      .object({
        initial_public_key: z.preprocess(unset, z.string().optional()),
        registration_secret: z.preprocess(unset, z.string().min(16, 'at least 16 characters').optional()),
        /** Stored instead of the secret; never given by users. */
        registration_secret_hash: z
          .string()
          .regex(/^[0-9a-f]{64}$/)
          .optional(),
        must_register_before: TIME,
      })
      .strict()
      .default({}),
    recovery: z
      .object({
        /** As in Teleport, 0 (its unset value) means the default, 1. */
        limit: z
          .number()
          .int()
          .min(0)
          .max(2 ** 32 - 1, 'at most 4294967295')
          .transform((n) => n || 1)
          .default(1),
        /** Teleport's three modes, all implemented; "" (unset) is standard. */
        mode: z.preprocess(
          (v) => (v === '' ? undefined : v),
          z.enum(['standard', 'relaxed', 'insecure']).default('standard'),
        ),
      })
      .strict()
      .default({}),
    rotate_after: TIME,
  })
  .strict();
export type BoundKeypairSpec = z.infer<typeof boundKeypairSpec>;

/**
 * A bound_keypair token whose first join must bring its registration secret: no
 * initial_public_key to join with, and no key bound yet. `spec` and `status` are the token's.
 */
export function awaitsRegistrationSecret(
  spec: Readonly<Record<string, unknown>>,
  status: Readonly<Record<string, unknown>> | undefined,
): boolean {
  if (spec.join_method !== 'bound_keypair') return false;
  const onboarding = (spec.bound_keypair as { onboarding?: { initial_public_key?: unknown } } | undefined)?.onboarding;
  const bound = (status?.bound_keypair as BoundKeypairStatus | undefined)?.bound_public_key;
  return !onboarding?.initial_public_key && !bound;
}

/** `status.bound_keypair`, written only by the Auth Service. */
export interface BoundKeypairStatus {
  bound_public_key?: string;
  bound_bot_instance_id?: string;
  recovery_count?: number;
  last_recovered_at?: string;
  last_rotated_at?: string;
  registered_at?: string;
  /** The binding before the latest join, accepted once more while that join's instance is unused. */
  previous_bot_instance_id?: string;
  previous_recovery_count?: number;
}

/** Challenge request payload: every public key tbot holds (current, pending rotation, previous). */
export interface BKChallengePayload {
  public_keys: string[];
}

/** What tbot receives: the claims to sign, and which of its keys to sign with. */
export interface BKChallenge {
  /** JSON text of the claims; signed byte for byte as a JWS payload. */
  claims: string;
  /** The key the Auth Service expects a signature from (authorized-key line). */
  public_key: string;
  /** A rotation is due: also sign with a new key and send it. */
  rotate: boolean;
}

/** Join payload. */
export interface BKJoinPayload {
  challenge_id: string;
  /** Compact JWS of the claims by `public_key`. */
  signature: string;
  registration_secret?: string;
  /** The join state document from the previous join (recoveries). */
  join_state?: string;
  new_public_key?: string;
  new_signature?: string;
}

/** method_data of the join answer. */
export interface BKJoinResult {
  join_state: string;
  bound_public_key: string;
  recovery_count: number;
  recovery_limit: number;
  recovery_mode: 'standard' | 'relaxed' | 'insecure';
  rotated: boolean;
}
