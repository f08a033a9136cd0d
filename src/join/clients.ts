import type { ClientJoinMethod } from './types.js';
import { tokenClient } from './token/client.js';

/** Client halves by method name (tbot side only). */
export const CLIENT_METHODS: ReadonlyMap<string, ClientJoinMethod> = new Map([[tokenClient.name, tokenClient]]);
