import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { MwiError } from '../../../errors.js';
import type { KubernetesAttestation } from './types.js';

/** Teleport's kubelet settings (attestors.kubernetes.kubelet). */
export interface KubeletConfig {
  /** The kubelet's read-only HTTP port (no authentication); excludes secure_port. */
  read_only_port?: number | undefined;
  /** The kubelet's HTTPS port; default 10250. */
  secure_port?: number | undefined;
  /** Bearer token file for the secure port; default the pod's service account token. */
  token_path?: string | undefined;
  /** CA that signed the kubelet's serving certificate; default the service account's ca.crt. */
  ca_path?: string | undefined;
  /** Do not verify the kubelet's certificate (many kubelets serve a self-signed one). */
  skip_verify?: boolean | undefined;
  /** Send no token. */
  anonymous?: boolean | undefined;
}

export const DEFAULT_KUBELET_SECURE_PORT = 10250;
const DEFAULT_TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount/token';
const DEFAULT_CA_PATH = '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt';
/** Teleport's variable for the node's name (the downward API sets it); the kubelet's host. */
export const NODE_NAME_ENV = 'TELEPORT_NODE_NAME';
const MAX_PODS_BYTES = 32 * 1024 * 1024;

/** The part of a kubelet /pods item attestation reads. */
export interface Pod {
  metadata?: { name?: string; namespace?: string; uid?: string; labels?: Record<string, string> };
  spec?: { serviceAccountName?: string };
  status?: {
    containerStatuses?: { containerID?: string }[];
    initContainerStatuses?: { containerID?: string }[];
    ephemeralContainerStatuses?: { containerID?: string }[];
  };
}

/** Where pods come from: the kubelet's /pods, or a list in a test. */
export interface PodSource {
  pods(): Promise<Pod[]>;
}

/** The kubelet of this node: GET /pods on its secure port (a bearer token) or its read-only port. */
export class KubeletClient implements PodSource {
  constructor(
    private readonly cfg: KubeletConfig,
    private readonly host = process.env[NODE_NAME_ENV] || 'localhost',
  ) {}

  async pods(): Promise<Pod[]> {
    const { cfg } = this;
    const headers: Record<string, string> = { accept: 'application/json' };
    let body: string;
    if (cfg.read_only_port) {
      body = await get(httpRequest, { host: this.host, port: cfg.read_only_port, path: '/pods', headers });
    } else {
      if (!cfg.anonymous)
        headers.authorization = `Bearer ${(await readFile(cfg.token_path ?? DEFAULT_TOKEN_PATH, 'utf8')).trim()}`;
      const ca = cfg.skip_verify ? undefined : await readFile(cfg.ca_path ?? DEFAULT_CA_PATH, 'utf8');
      body = await get(httpsRequest, {
        host: this.host,
        port: cfg.secure_port ?? DEFAULT_KUBELET_SECURE_PORT,
        path: '/pods',
        headers,
        ca,
        rejectUnauthorized: !cfg.skip_verify,
      });
    }
    const list = JSON.parse(body) as { items?: Pod[] };
    return list.items ?? [];
  }
}

function get(request: typeof httpRequest, opts: RequestOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ ...opts, method: 'GET', timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_PODS_BYTES) req.destroy(new Error('kubelet /pods answer too large'));
        else chunks.push(c);
      });
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode !== 200)
          reject(new Error(`kubelet /pods answered ${res.statusCode}: ${text.slice(0, 200)}`));
        else resolve(text);
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('kubelet /pods timed out')));
    req.on('error', reject);
    req.end();
  });
}

/** The container ID and pod UID in a /proc/PID/cgroup file, from any of the runtimes' path forms. */
export function containerOf(cgroup: string): { containerId?: string; podUid?: string } {
  for (const line of cgroup.split('\n')) {
    const path = line.split(':').slice(2).join(':');
    // cgroupfs: /kubepods/burstable/pod<uid>/<id>; systemd: kubepods-burstable-pod<u_i_d>.slice/
    // cri-containerd-<id>.scope (also docker-, crio-)
    const id = /(?:^|[/-])([0-9a-f]{64})(?:\.scope)?$/.exec(path)?.[1];
    const pod = /pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})/.exec(path)?.[1];
    if (id) return { containerId: id, ...(pod ? { podUid: pod.replace(/_/g, '-') } : {}) };
  }
  return {};
}

/**
 * A PodSource that keeps the kubelet's answer `ttlMs` (2 s): a burst of connections costs one
 * GET /pods, and concurrent lookups share the one in flight. A failure is not kept.
 */
export class CachedPodSource implements PodSource {
  private last: { at: number; pods: Pod[] } | undefined;
  private pending: Promise<Pod[]> | undefined;

  constructor(
    private readonly inner: PodSource,
    private readonly ttlMs = 2000,
    private readonly now = () => Date.now(),
  ) {}

  pods(): Promise<Pod[]> {
    if (this.last && this.now() - this.last.at < this.ttlMs) return Promise.resolve(this.last.pods);
    this.pending ??= this.inner.pods().then(
      (pods) => {
        this.last = { at: this.now(), pods };
        this.pending = undefined;
        return pods;
      },
      (err: unknown) => {
        this.pending = undefined;
        throw err;
      },
    );
    return this.pending;
  }
}

/** The container (and pod UID) of `pid`, from its /proc/PID/cgroup: read when the workload connects. */
export async function cgroupOf(pid: number, procRoot = '/proc'): Promise<{ containerId?: string; podUid?: string }> {
  try {
    return containerOf(await readFile(`${procRoot}/${pid}/cgroup`, 'utf8'));
  } catch {
    return {};
  }
}

/**
 * Kubernetes attestation: the workload's container ID from /proc/PID/cgroup, then the pod whose
 * container statuses name that ID (`containerd://<id>` ...) in the kubelet's /pods. A process in
 * no container (or one the kubelet does not list) is not attested: `attested: false`, and the
 * Auth Service's rules on workload.kubernetes.* do not match it. tbot needs the host's PID
 * namespace (hostPID: true) to see the workloads' /proc.
 */
export async function attestKubernetes(
  pid: number,
  source: PodSource,
  procRoot = '/proc',
): Promise<KubernetesAttestation | undefined> {
  return podOf(await cgroupOf(pid, procRoot), source);
}

/** The pod of a container (cgroupOf's answer) in the kubelet's /pods. */
export async function podOf(
  { containerId, podUid }: { containerId?: string; podUid?: string },
  source: PodSource,
): Promise<KubernetesAttestation | undefined> {
  if (!containerId) return undefined;
  let pods: Pod[];
  try {
    pods = await source.pods();
  } catch (cause) {
    throw new MwiError('UNREACHABLE', `kubernetes attestation: cannot list the kubelet's pods: ${String(cause)}`, {
      cause,
    });
  }
  const ids = (p: Pod) =>
    [
      ...(p.status?.containerStatuses ?? []),
      ...(p.status?.initContainerStatuses ?? []),
      ...(p.status?.ephemeralContainerStatuses ?? []),
    ].map((c) => c.containerID?.replace(/^[a-z0-9-]+:\/\//, ''));
  const pod = pods.find((p) => ids(p).includes(containerId));
  if (!pod?.metadata?.name || !pod.metadata.namespace || !pod.metadata.uid) return undefined;
  // the cgroup's pod UID, when it names one, must be this pod's: a container ID is unique per node
  if (podUid && podUid !== pod.metadata.uid) return undefined;
  return {
    attested: true,
    namespace: pod.metadata.namespace,
    service_account: pod.spec?.serviceAccountName ?? 'default',
    pod_name: pod.metadata.name,
    pod_uid: pod.metadata.uid,
    ...(pod.metadata.labels ? { labels: pod.metadata.labels } : {}),
  };
}
