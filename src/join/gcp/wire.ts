import { z } from 'zod';

export const gcpSpec = z.object({}).strict();
export type GcpSpec = z.infer<typeof gcpSpec>;

export const GOOGLE_ISSUER = 'https://accounts.google.com';

/** `allow` on the VM identity token (format=full): lists, any element matching. */
export const GCP_ALLOW = {
  project_ids: { claim: 'project_id', type: 'strings' },
  locations: { claim: 'zone', match: 'region-or-zone', type: 'strings' },
  service_accounts: { claim: 'email', type: 'strings' },
} as const;

/** A rule names at least one project (Teleport's rule). */
export const GCP_REQUIRED = [['project_ids']] as const;
