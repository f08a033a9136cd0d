import { readFileSync } from 'node:fs';
import { MwiError } from '../../errors.js';
import type { ClientJoinMethod } from '../client-types.js';
import { DEFAULT_TOKEN_PATH } from './wire.js';

/** Reads the projected service account token (KUBERNETES_TOKEN_PATH, else the default mount). */
export const kubernetesClient: ClientJoinMethod = {
  name: 'kubernetes',
  async payload() {
    const path = process.env.KUBERNETES_TOKEN_PATH ?? DEFAULT_TOKEN_PATH;
    try {
      return { id_token: readFileSync(path, 'utf8').trim() };
    } catch (cause) {
      throw new MwiError(
        'BAD_CONFIG',
        `cannot read the service account token at ${path} (mount a projected token with the cluster name as ` +
          `audience, or set KUBERNETES_TOKEN_PATH)`,
        {
          field: 'onboarding.join_method kubernetes',
          cause,
        },
      );
    }
  },
};
