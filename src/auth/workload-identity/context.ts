import type { WorkloadIdentity } from '../../api/workload-identity-resource.js';
import type { Backend } from '../../storage/backend.js';
import { ResourceCache } from '../cache.js';
import { WorkloadAuthorities } from './keys.js';

/** mwi.yaml `workload_identity` as the Auth Service uses it. */
export interface WorkloadIdentityOptions {
  /** The SPIFFE trust domain (default: the cluster name). */
  trustDomain?: string | undefined;
  /** The JWT-SVID `iss` and the OpenID discovery document's issuer (an https URL), if federation is set up. */
  issuer?: string | undefined;
}

/** Everything issuance needs, opened once at startup. */
export interface WorkloadContext {
  authorities: WorkloadAuthorities;
  /** Every workload_identity resource, from memory (kept current by the storage watch). */
  identities: ResourceCache<WorkloadIdentity>;
  issuer: string | undefined;
}

/** The index key under which the cache holds every identity (label selectors scan them all). */
export const ALL = 'all';
export const WORKLOAD_IDENTITY_PREFIX = '/workload_identities/';

export async function openWorkloadContext(
  backend: Backend,
  opts: WorkloadIdentityOptions & { clusterName: string; now: () => number },
): Promise<WorkloadContext> {
  return {
    authorities: await WorkloadAuthorities.open(backend, {
      clusterName: opts.clusterName,
      trustDomain: opts.trustDomain ?? opts.clusterName.toLowerCase(),
      now: opts.now,
    }),
    identities: await ResourceCache.open<WorkloadIdentity>(backend, WORKLOAD_IDENTITY_PREFIX, () => [ALL]),
    issuer: opts.issuer,
  };
}
