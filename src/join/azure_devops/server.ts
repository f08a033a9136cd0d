import { jwtServer } from '../jwt/method.js';
import { AZURE_DEVOPS_ALLOW, AZURE_DEVOPS_AUDIENCE, AZURE_DEVOPS_REQUIRED, azureDevopsSpec } from './wire.js';

/** Azure DevOps pipeline OIDC tokens (the audience is fixed by Azure DevOps). */
export const azureDevopsServer = jwtServer({
  name: 'azure_devops',
  schema: azureDevopsSpec,
  issuer: (s) => ({ issuer: `https://vstoken.dev.azure.com/${s.organization_id}` }),
  audience: () => AZURE_DEVOPS_AUDIENCE,
  allowFields: AZURE_DEVOPS_ALLOW,
  requireOneOf: AZURE_DEVOPS_REQUIRED,
  maxLifetimeS: 3600,
  required: ['sub'],
  flatten(c) {
    const m = /^p:\/\/([^/]+)\/([^/]+)\/(.+)$/.exec(typeof c.sub === 'string' ? c.sub : '');
    return { ...c, project_name: m?.[2], pipeline_name: m?.[3] };
  },
});
