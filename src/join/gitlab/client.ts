import { z } from 'zod';
import { MwiError } from '../../errors.js';
import type { ClientJoinMethod } from '../client-types.js';

const envVarName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name');

/** Reads the GitLab CI id_token from the variable named by onboarding.gitlab.token_env_var_name. */
export const gitlabClient: ClientJoinMethod = {
  name: 'gitlab',
  // onboarding.gitlab names the variable
  // (a join URI's parameter names it too, as in Teleport)
  options: {
    schema: z.object({ token_env_var_name: envVarName.optional() }).strict(),
    uriParameter: { key: 'token_env_var_name' },
  },
  async payload(ctx) {
    const configured = ctx.options.token_env_var_name;
    const name = typeof configured === 'string' ? configured : 'TBOT_GITLAB_JWT';
    const token = process.env[name];
    if (!token) {
      throw new MwiError(
        'BAD_CONFIG',
        `${name} is not set: declare it in the job's id_tokens with the cluster name as aud`,
        { field: 'onboarding.gitlab.token_env_var_name' },
      );
    }
    return { id_token: token };
  },
};
