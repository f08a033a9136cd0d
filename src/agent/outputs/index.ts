import type { ServiceType } from '../service.js';
import { identityOutput } from './identity.js';
import { workloadIdentityJwtOutput, workloadIdentityX509Output } from './workload-identity.js';

/** The output types the `outputs:` list accepts. */
export const OUTPUT_TYPES: readonly ServiceType[] = [
  identityOutput,
  workloadIdentityX509Output,
  workloadIdentityJwtOutput,
];
