import { z } from 'zod';

/** `spec.terraform_cloud`: HCP Terraform or Terraform Enterprise (`hostname`), optional custom audience. */
export const terraformCloudSpec = z
  .object({
    hostname: z
      .string()
      .regex(/^[A-Za-z0-9.-]+(:\d+)?$/, 'expected a host name')
      .default('app.terraform.io'),
    audience: z.string().min(1).optional(),
  })
  .strict();
export type TerraformCloudSpec = z.infer<typeof terraformCloudSpec>;

export const TERRAFORM_CLOUD_ALLOW = {
  organization_id: { claim: 'terraform_organization_id' },
  organization_name: { claim: 'terraform_organization_name' },
  project_id: { claim: 'terraform_project_id' },
  project_name: { claim: 'terraform_project_name' },
  workspace_id: { claim: 'terraform_workspace_id' },
  workspace_name: { claim: 'terraform_workspace_name' },
  run_phase: { claim: 'terraform_run_phase' },
} as const;

/** A rule names the organization, and a project or workspace in it (Teleport's rule). */
export const TERRAFORM_CLOUD_REQUIRED = [
  ['organization_id', 'organization_name'],
  ['project_id', 'project_name', 'workspace_id', 'workspace_name'],
] as const;
