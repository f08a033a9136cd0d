import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MwiError } from '../../errors.js';
import { readFor } from './files.js';
import { fromKubeconfig } from './kubeconfig.js';

/** Where a pod finds its service account: token, the cluster's CA and its namespace. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * Testing and advanced knob: another directory in place of SERVICE_ACCOUNT_DIR (it must hold
 * `token` and `ca.crt`, like the mounted one). Documented in docs/reference.md.
 */
export const SERVICE_ACCOUNT_DIR_ENV = 'MWI_KUBERNETES_SERVICE_ACCOUNT_DIR';

/** How tbot reaches a Kubernetes API server, and as whom. */
export interface KubeConnection {
  /** `https://HOST:PORT`, without a trailing slash. */
  server: string;
  /** PEM certificates that verify the API server; undefined: the system trust store. */
  ca: string | undefined;
  /** Overrides the name the server certificate is checked against (kubeconfig tls-server-name). */
  servername: string | undefined;
  /** A bearer token, read again for every request (the kubelet rotates a pod's token). */
  token: (() => string) | undefined;
  /** A client certificate and its key (PEM). */
  cert: string | undefined;
  key: string | undefined;
  /** The namespace this connection implies: the kubeconfig context's, or the pod's. */
  namespace: string | undefined;
  /** How messages name it: `in-cluster (KUBERNETES_SERVICE_HOST)`, `kubeconfig FILE (context CTX)`. */
  source: string;
}

/** What chooses the connection: a destination's keys and the environment. */
export interface ConnectionOptions {
  kubeconfigPath?: string | undefined;
  kubeconfigContext?: string | undefined;
  /** The field errors name (`storage`, `outputs[0].destination`). */
  field: string;
}

/** The pod's own API server and service account (what client-go calls the in-cluster config). */
function inCluster(env: NodeJS.ProcessEnv, field: string): KubeConnection {
  const host = env.KUBERNETES_SERVICE_HOST!;
  const port = env.KUBERNETES_SERVICE_PORT || '443';
  const dir = env[SERVICE_ACCOUNT_DIR_ENV] || SERVICE_ACCOUNT_DIR;
  const tokenPath = join(dir, 'token');
  // read once now, so that a missing token stops tbot at start rather than at its first write
  readFor(tokenPath, 'the service account token', field);
  const nsPath = join(dir, 'namespace');
  return {
    server: `https://${host.includes(':') ? `[${host}]` : host}:${port}`,
    ca: readFor(join(dir, 'ca.crt'), "the cluster's CA certificate", field),
    servername: undefined,
    token: () => readFor(tokenPath, 'the service account token', field).trim(),
    cert: undefined,
    key: undefined,
    namespace: existsSync(nsPath) ? readFor(nsPath, 'the namespace file', field).trim() || undefined : undefined,
    source: `in-cluster (KUBERNETES_SERVICE_HOST=${host}, service account in ${dir})`,
  };
}

/**
 * The connection a `kubernetes_secret` destination uses, in Teleport's order: `kubeconfig_path`,
 * else `$KUBECONFIG`, else the pod's own service account. Nothing is sent yet: files are read
 * and checked, so a wrong setting stops tbot at start, naming it.
 */
export function resolveConnection(opts: ConnectionOptions, env: NodeJS.ProcessEnv = process.env): KubeConnection {
  const { field } = opts;
  const contextField = `${field}.kubeconfig_context`;
  if (opts.kubeconfigPath)
    return fromKubeconfig([opts.kubeconfigPath], opts.kubeconfigContext, `${field}.kubeconfig_path`, contextField);
  const fromEnv = (env.KUBECONFIG ?? '').split(':').filter(Boolean);
  if (fromEnv.length > 0) return fromKubeconfig(fromEnv, opts.kubeconfigContext, 'KUBECONFIG', contextField);
  if (opts.kubeconfigContext)
    throw new MwiError(
      'BAD_CONFIG',
      'needs a kubeconfig (kubeconfig_path or $KUBECONFIG): in a pod, tbot uses its own service account',
      { field: contextField },
    );
  if (env.KUBERNETES_SERVICE_HOST) return inCluster(env, field);
  throw new MwiError(
    'BAD_CONFIG',
    'no Kubernetes API to write the Secret to: tbot is not in a pod (KUBERNETES_SERVICE_HOST is not set) and ' +
      'neither kubeconfig_path nor $KUBECONFIG names a kubeconfig',
    { field },
  );
}
