import { jwtServer } from '../jwt/method.js';
import { SPACELIFT_ALLOW, SPACELIFT_REQUIRED, spaceliftSpec } from './wire.js';

/** Spacelift run OIDC tokens. */
export const spaceliftServer = jwtServer({
  name: 'spacelift',
  schema: spaceliftSpec,
  issuer: (s) => ({ issuer: `https://${s.hostname}` }),
  audience: (s) => s.hostname,
  allowFields: SPACELIFT_ALLOW,
  requireOneOf: SPACELIFT_REQUIRED,
  maxLifetimeS: 3600,
  required: ['sub', 'spaceId'],
});
