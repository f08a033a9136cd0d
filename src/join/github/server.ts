import { jwtServer } from '../jwt/method.js';
import { GITHUB_ALLOW, GITHUB_REQUIRED, githubIssuer, githubSpec } from './wire.js';

/** GitHub Actions OIDC tokens. GitHub's tokens live minutes; an hour is the most accepted. */
export const githubServer = jwtServer({
  name: 'github',
  schema: githubSpec,
  issuer: (s) => ({ issuer: githubIssuer(s), staticJwks: s.static_jwks }),
  allowFields: GITHUB_ALLOW,
  requireOneOf: GITHUB_REQUIRED,
  maxLifetimeS: 3600,
  required: ['sub', 'repository'],
});
