import { envTokenClient } from '../jwt/client.js';

export const bitbucketClient = envTokenClient(
  'bitbucket',
  'BITBUCKET_STEP_OIDC_TOKEN',
  'set "oidc: true" on the pipeline step',
);
