import { z } from 'zod';

/** `spec.circleci`: tokens are issued per organization, and their audience is its id. */
export const circleciSpec = z.object({ organization_id: z.string().min(1, 'required') }).strict();
export type CircleciSpec = z.infer<typeof circleciSpec>;

export const CIRCLECI_ALLOW = {
  project_id: { claim: 'project_id' },
  /** Matches when the job ran with this context (a token may carry several). */
  context_id: { claim: 'context_id', list: true },
} as const;

/** A rule names the project or the context (Teleport's rule). */
export const CIRCLECI_REQUIRED = [['project_id', 'context_id']] as const;
