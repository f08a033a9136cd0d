import { z } from 'zod';

/** `spec.azure_devops`: the organization id (issuer https://vstoken.dev.azure.com/ORG_ID). */
export const azureDevopsSpec = z.object({ organization_id: z.string().min(1, 'required') }).strict();
export type AzureDevopsSpec = z.infer<typeof azureDevopsSpec>;

/** Azure DevOps tokens carry the pipeline in `sub` (p://ORG/PROJECT/PIPELINE) and ids in claims. */
export const AZURE_DEVOPS_ALLOW = {
  sub: { claim: 'sub' },
  project_name: { claim: 'project_name' },
  pipeline_name: { claim: 'pipeline_name' },
  project_id: { claim: 'prj_id' },
  definition_id: { claim: 'def_id' },
  repository_uri: { claim: 'rpo_uri' },
  repository_version: { claim: 'rpo_ver' },
  repository_ref: { claim: 'rpo_ref' },
} as const;

/** A rule names the pipeline's subject or its project (Teleport's rule). */
export const AZURE_DEVOPS_REQUIRED = [['sub', 'project_name', 'project_id']] as const;

export const AZURE_DEVOPS_AUDIENCE = 'api://AzureADTokenExchange';
