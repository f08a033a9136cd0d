// What tbot tells the Auth Service about a workload: the wire contract's WorkloadAttributes
// (Teleport's attribute names, as rules and templates spell them: workload.unix.uid, ...).

/** `workload.unix.*`: from the socket's peer credentials and /proc. */
export interface UnixAttestation {
  attested: boolean;
  pid: number;
  uid: number;
  gid: number;
  /** readlink /proc/PID/exe; absent when tbot may not read it. */
  binary_path?: string;
  /** SHA-256 (hex) of /proc/PID/exe; absent when larger than binary_hash_max_size_bytes or unreadable. */
  binary_hash?: string;
}

/** `workload.kubernetes.*`: the pod the workload's container belongs to, from the kubelet. */
export interface KubernetesAttestation {
  attested: boolean;
  namespace: string;
  service_account: string;
  pod_name: string;
  pod_uid: string;
  labels?: Record<string, string>;
}

export interface WorkloadAttributes {
  unix?: UnixAttestation;
  kubernetes?: KubernetesAttestation;
}
