import type { ServerJoinMethod } from './types.js';
import { tokenServer } from './token/server.js';
import { boundKeypairServer } from './bound_keypair/server.js';

/** Server halves by method name (Auth Service side only). */
export const SERVER_METHODS: ReadonlyMap<string, ServerJoinMethod> = new Map(
  [tokenServer, boundKeypairServer].map((m) => [m.name, m]),
);
