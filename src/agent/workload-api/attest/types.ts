// What tbot tells the Auth Service about a workload: the wire contract's WorkloadAttributes
// (Teleport's attribute names, as rules and templates spell them: workload.unix.uid, ...).
import type { WorkloadAttributes } from '../../../api/workload-identity.js';

export type { WorkloadAttributes };
/** `workload.unix.*`: from the socket's peer credentials and /proc. */
export type UnixAttestation = NonNullable<WorkloadAttributes['unix']>;
/** `workload.kubernetes.*`: the pod the workload's container belongs to, from the kubelet. */
export type KubernetesAttestation = NonNullable<WorkloadAttributes['kubernetes']>;
