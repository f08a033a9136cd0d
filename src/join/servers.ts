import type { ServerJoinMethod } from './types.js';
import { tokenServer } from './token/server.js';
import { boundKeypairServer } from './bound_keypair/server.js';
import { githubServer } from './github/server.js';
import { gitlabServer } from './gitlab/server.js';
import { kubernetesServer } from './kubernetes/server.js';

/** Server halves by method name (Auth Service side only). */
export const SERVER_METHODS: ReadonlyMap<string, ServerJoinMethod> = new Map(
  [tokenServer, boundKeypairServer, githubServer, gitlabServer, kubernetesServer].map((m) => [m.name, m]),
);
