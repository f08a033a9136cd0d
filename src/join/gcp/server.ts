import { jwtServer } from '../jwt/method.js';
import { GCP_ALLOW, GCP_REQUIRED, gcpSpec, GOOGLE_ISSUER } from './wire.js';

/** GCE instance identity tokens (`format=full`), audience = cluster name. */
export const gcpServer = jwtServer({
  name: 'gcp',
  schema: gcpSpec,
  issuer: () => ({ issuer: GOOGLE_ISSUER }),
  allowFields: GCP_ALLOW,
  requireOneOf: GCP_REQUIRED,
  maxLifetimeS: 3600,
  required: ['email', 'google'],
  flatten(c) {
    const gce = (c.google as { compute_engine?: { project_id?: string; zone?: string } } | undefined)?.compute_engine;
    return { ...c, project_id: gce?.project_id, zone: gce?.zone };
  },
});
