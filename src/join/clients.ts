import type { ClientJoinMethod } from './types.js';
import { tokenClient } from './token/client.js';
import { boundKeypairClient } from './bound_keypair/client.js';
import { githubClient } from './github/client.js';
import { gitlabClient } from './gitlab/client.js';
import { kubernetesClient } from './kubernetes/client.js';

/** Client halves by method name (tbot side only). */
export const CLIENT_METHODS: ReadonlyMap<string, ClientJoinMethod> = new Map(
  [tokenClient, boundKeypairClient, githubClient, gitlabClient, kubernetesClient].map((m) => [m.name, m]),
);
