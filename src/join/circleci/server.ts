import { jwtServer } from '../jwt/method.js';
import { CIRCLECI_ALLOW, CIRCLECI_REQUIRED, circleciSpec } from './wire.js';

/** CircleCI OIDC tokens: issuer and audience are the organization's. */
export const circleciServer = jwtServer({
  name: 'circleci',
  schema: circleciSpec,
  issuer: (s) => ({ issuer: `https://oidc.circleci.com/org/${s.organization_id}` }),
  audience: (s) => s.organization_id,
  allowFields: CIRCLECI_ALLOW,
  requireOneOf: CIRCLECI_REQUIRED,
  maxLifetimeS: 3600,
  required: ['sub', 'oidc.circleci.com/project-id'],
  flatten(c) {
    const contexts = c['oidc.circleci.com/context-ids'];
    return {
      ...c,
      project_id: c['oidc.circleci.com/project-id'],
      context_id: Array.isArray(contexts) ? contexts : undefined,
    };
  },
});
