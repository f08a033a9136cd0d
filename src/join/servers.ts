import type { ServerJoinMethod } from './types.js';
import { tokenServer } from './token/server.js';

/** Server halves by method name (Auth Service side only). */
export const SERVER_METHODS: ReadonlyMap<string, ServerJoinMethod> = new Map([[tokenServer.name, tokenServer]]);
