import type { JoinHandler } from '../join/types.js';
import type { Backend } from '../storage/backend.js';
import type { AuditLog } from './audit.js';
import type { Authorities } from './authorities.js';
import type { ResourceCache } from './cache.js';
import type { Bot, Lock, Role } from '../api/resources.js';
import type { WorkloadContext } from './workload-identity/context.js';

/** Everything a request handler needs, built once at startup. */
export interface AuthContext {
  backend: Backend;
  cas: Authorities;
  audit: AuditLog;
  roles: ResourceCache<Role>;
  bots: ResourceCache<Bot>;
  locks: ResourceCache<Lock>;
  now: () => number;
  /** The join methods' server halves, built at startup, by method name. */
  methods: ReadonlyMap<string, JoinHandler>;
  /** Workload identity (SPIFFE): its CA, keys and resources (absent in contexts tests build by hand). */
  workload?: WorkloadContext;
}

/** Hard cap on any credential's lifetime (DESIGN.md section 4). */
export const MAX_TTL_MS = 24 * 3600 * 1000;
export const DEFAULT_TTL_MS = 3600 * 1000;
/** How long a bot instance outlives its last credential before it is forgotten. */
export const INSTANCE_GRACE_MS = 5 * 60 * 1000;
