import { z } from 'zod';

/** `spec.spacelift`: the account's hostname (issuer https://HOSTNAME, audience HOSTNAME). */
export const spaceliftSpec = z
  .object({
    hostname: z.string().regex(/^[A-Za-z0-9.-]+$/, 'expected a host name such as example.app.spacelift.io'),
    /** Teleport's switch: space_id and caller_id are globs (`*`, `?`), matched against the whole claim. */
    enable_glob_matching: z.boolean().optional(),
  })
  .strict();
export type SpaceliftSpec = z.infer<typeof spaceliftSpec>;

export const SPACELIFT_ALLOW = {
  space_id: { claim: 'spaceId' },
  caller_id: { claim: 'callerId' },
  caller_type: { claim: 'callerType' },
  scope: { claim: 'scope' },
} as const;

/** A rule names the space or the caller (Teleport's rule), not by wildcards alone. */
export const SPACELIFT_REQUIRED = [['space_id', 'caller_id']] as const;
