import { jwtServer } from '../jwt/method.js';
import type { AllowField } from '../jwt/rules.js';
import { SPACELIFT_ALLOW, SPACELIFT_REQUIRED, spaceliftSpec, type SpaceliftSpec } from './wire.js';

/** The rule fields of a token: space_id and caller_id are globs with `enable_glob_matching`. */
function spaceliftAllow(s: SpaceliftSpec): Readonly<Record<string, AllowField>> {
  if (!s.enable_glob_matching) return SPACELIFT_ALLOW;
  return {
    ...SPACELIFT_ALLOW,
    space_id: { ...SPACELIFT_ALLOW.space_id, match: 'glob' },
    caller_id: { ...SPACELIFT_ALLOW.caller_id, match: 'glob' },
  };
}

/** Spacelift run OIDC tokens. */
export const spaceliftServer = jwtServer({
  name: 'spacelift',
  schema: spaceliftSpec,
  issuer: (s) => ({ issuer: `https://${s.hostname}` }),
  audience: (s) => s.hostname,
  allowFields: spaceliftAllow,
  requireOneOf: SPACELIFT_REQUIRED,
  maxLifetimeS: 3600,
  required: ['sub', 'spaceId'],
});
