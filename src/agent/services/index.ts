import { OUTPUT_TYPES } from '../outputs/index.js';
import type { ServiceType } from '../service.js';
import { workloadIdentityApiService } from '../workload-api/service.js';

/**
 * The types the `services:` list accepts: every output type (Teleport's v2 config takes outputs
 * there too), so the bot builds every item of either list from here.
 */
export const SERVICE_TYPES: readonly ServiceType[] = [...OUTPUT_TYPES, workloadIdentityApiService];
