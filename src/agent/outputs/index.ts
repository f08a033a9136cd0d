import type { ServiceType } from '../service.js';
import { identityOutput } from './identity.js';

/** The output types the `outputs:` list accepts. */
export const OUTPUT_TYPES: readonly ServiceType[] = [identityOutput];
