// The Auth Service side tbot's Workload API consumes: the workload-identity wire contract
// (src/api/workload-identity.ts), as the Workload API server needs it.
import type {
  JwtSvidRequest,
  JwtSvidResponse,
  Selector,
  WorkloadBundle,
  X509SvidRequest,
  X509SvidResponse,
} from '../../api/workload-identity.js';

export type { Selector, WorkloadBundle as Bundle };

/** Issues SVIDs over the bot's identity. */
export interface WorkloadIssuer {
  /** False until tbot has an identity to ask with (the Workload API answers Unavailable meanwhile). */
  ready(): boolean;
  issueX509Svids(req: X509SvidRequest): Promise<X509SvidResponse>;
  issueJwtSvids(req: JwtSvidRequest): Promise<JwtSvidResponse>;
  workloadBundle(): Promise<WorkloadBundle>;
}
