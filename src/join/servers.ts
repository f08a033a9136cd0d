import type { ServerJoinMethod } from './types.js';
import { tokenServer } from './token/server.js';
import { boundKeypairServer } from './bound_keypair/server.js';
import { githubServer } from './github/server.js';
import { gitlabServer } from './gitlab/server.js';
import { kubernetesServer } from './kubernetes/server.js';
import { circleciServer } from './circleci/server.js';
import { gcpServer } from './gcp/server.js';
import { terraformCloudServer } from './terraform_cloud/server.js';
import { spaceliftServer } from './spacelift/server.js';
import { bitbucketServer } from './bitbucket/server.js';
import { azureDevopsServer } from './azure_devops/server.js';

/** Server halves by method name (Auth Service side only). */
export const SERVER_METHODS: ReadonlyMap<string, ServerJoinMethod> = new Map(
  [tokenServer, boundKeypairServer, githubServer, gitlabServer, kubernetesServer, circleciServer, gcpServer, terraformCloudServer, spaceliftServer, bitbucketServer, azureDevopsServer].map((m) => [m.name, m]),
);
