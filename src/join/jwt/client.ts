import { MwiError } from '../../errors.js';
import type { ClientJoinMethod } from '../client-types.js';
import type { JwtJoinPayload } from './wire.js';

/** A client half that reads the platform's token from an environment variable. */
export function envTokenClient(name: string, defaultVar: string, hint: string): ClientJoinMethod {
  return {
    name,
    async payload(ctx) {
      const configured = ctx.options.token_env_var_name;
      const v = typeof configured === 'string' ? configured : defaultVar;
      const token = process.env[v];
      if (!token) {
        throw new MwiError('BAD_CONFIG', `${v} is not set: ${hint}`, { field: `onboarding.join_method ${name}` });
      }
      return { id_token: token } satisfies JwtJoinPayload;
    },
  };
}

/** The client half of a JWT method: its token source. */
export function jwtClient(name: string, source: (audience: string) => Promise<string>): ClientJoinMethod {
  return {
    name,
    async payload(ctx) {
      return { id_token: await source(await ctx.clusterName()) } satisfies JwtJoinPayload;
    },
  };
}
