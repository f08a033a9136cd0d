import type { ServiceType } from '../service.js';
import { databaseOutput } from './database.js';
import { identityOutput } from './identity.js';
import { sshHostOutput } from './ssh-host.js';
import { workloadIdentityJwtOutput, workloadIdentityX509Output } from './workload-identity.js';

/** The output types the `outputs:` list accepts. */
export const OUTPUT_TYPES: readonly ServiceType[] = [
  identityOutput,
  sshHostOutput,
  databaseOutput,
  workloadIdentityX509Output,
  workloadIdentityJwtOutput,
];
