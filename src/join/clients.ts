import type { ClientJoinMethod } from './client-types.js';
import { tokenClient } from './token/client.js';
import { boundKeypairClient } from './bound_keypair/client.js';
import { githubClient } from './github/client.js';
import { gitlabClient } from './gitlab/client.js';
import { kubernetesClient } from './kubernetes/client.js';
import { circleciClient } from './circleci/client.js';
import { gcpClient } from './gcp/client.js';
import { terraformCloudClient } from './terraform_cloud/client.js';
import { spaceliftClient } from './spacelift/client.js';
import { bitbucketClient } from './bitbucket/client.js';
import { azureDevopsClient } from './azure_devops/client.js';
import { azureClient } from './azure/client.js';
import { iamClient } from './iam/client.js';
import { ec2Client } from './ec2/client.js';

/** Client halves by method name (tbot side only). */
export const CLIENT_METHODS: ReadonlyMap<string, ClientJoinMethod> = new Map(
  [
    tokenClient,
    boundKeypairClient,
    githubClient,
    gitlabClient,
    kubernetesClient,
    circleciClient,
    gcpClient,
    terraformCloudClient,
    spaceliftClient,
    bitbucketClient,
    azureDevopsClient,
    azureClient,
    iamClient,
    ec2Client,
  ].map((m) => [m.name, m]),
);
