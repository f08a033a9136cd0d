import type { ClientJoinMethod } from '../client-types.js';

/** Method `token` needs nothing beyond the token itself. */
export const tokenClient: ClientJoinMethod = {
  name: 'token',
  async payload(): Promise<undefined> {
    return undefined;
  },
};
