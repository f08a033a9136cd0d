import { z } from 'zod';

/** `spec.bitbucket`: the workspace's identity provider URL (issuer) and audience, from its OIDC settings. */
export const bitbucketSpec = z
  .object({ identity_provider_url: z.string().url(), audience: z.string().min(1) })
  .strict();
export type BitbucketSpec = z.infer<typeof bitbucketSpec>;

export const BITBUCKET_ALLOW = {
  workspace_uuid: { claim: 'workspaceUuid' },
  repository_uuid: { claim: 'repositoryUuid' },
  deployment_environment_uuid: { claim: 'deploymentEnvironmentUuid' },
  branch_name: { claim: 'branchName' },
} as const;

/** A rule names the workspace or the repository (Teleport's rule). */
export const BITBUCKET_REQUIRED = [['workspace_uuid', 'repository_uuid']] as const;
