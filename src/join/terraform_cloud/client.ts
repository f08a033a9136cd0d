import { envTokenClient } from '../jwt/client.js';

export const terraformCloudClient = envTokenClient(
  'terraform_cloud',
  'TFC_WORKLOAD_IDENTITY_TOKEN',
  'set TFC_WORKLOAD_IDENTITY_AUDIENCE in the workspace so HCP Terraform issues one',
);
