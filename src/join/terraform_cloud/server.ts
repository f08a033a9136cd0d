import { jwtServer } from '../jwt/method.js';
import { TERRAFORM_CLOUD_ALLOW, TERRAFORM_CLOUD_REQUIRED, terraformCloudSpec } from './wire.js';

/** HCP Terraform workload identity tokens (one per run phase). */
export const terraformCloudServer = jwtServer({
  name: 'terraform_cloud',
  schema: terraformCloudSpec,
  issuer: (s) => ({ issuer: `https://${s.hostname}` }),
  audience: (s, cluster) => s.audience ?? cluster,
  allowFields: TERRAFORM_CLOUD_ALLOW,
  requireOneOf: TERRAFORM_CLOUD_REQUIRED,
  maxLifetimeS: 3 * 3600,
  required: ['sub', 'terraform_organization_id', 'terraform_workspace_id'],
});
