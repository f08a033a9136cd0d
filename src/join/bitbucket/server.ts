import { jwtServer } from '../jwt/method.js';
import { BITBUCKET_ALLOW, BITBUCKET_REQUIRED, bitbucketSpec } from './wire.js';

/** Bitbucket Pipelines step OIDC tokens. */
export const bitbucketServer = jwtServer({
  name: 'bitbucket',
  schema: bitbucketSpec,
  issuer: (s) => ({ issuer: s.identity_provider_url.replace(/\/+$/, '') }),
  audience: (s) => s.audience,
  allowFields: BITBUCKET_ALLOW,
  requireOneOf: BITBUCKET_REQUIRED,
  maxLifetimeS: 3600,
  required: ['sub', 'workspaceUuid', 'repositoryUuid'],
});
