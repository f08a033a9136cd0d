import { jwtServer } from '../jwt/method.js';
import { GITLAB_ALLOW, GITLAB_REQUIRED, gitlabSpec } from './wire.js';

/** GitLab CI `id_tokens`. */
export const gitlabServer = jwtServer({
  name: 'gitlab',
  schema: gitlabSpec,
  issuer: (s) => ({ issuer: `https://${s.domain}`, staticJwks: s.static_jwks }),
  allowFields: GITLAB_ALLOW,
  requireOneOf: GITLAB_REQUIRED,
  maxLifetimeS: 24 * 3600,
  required: ['sub', 'project_path'],
});
