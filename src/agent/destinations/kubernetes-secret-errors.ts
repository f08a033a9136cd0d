import { MwiError } from '../../errors.js';
import { ioReason } from '../../util/io-reason.js';
import { KubeApiError } from '../kube/client.js';

/** The verbs tbot needs on each of its Secrets: read, update (apply) and create (an apply that creates). */
export const SECRET_VERBS = ['get', 'patch', 'create'] as const;

/** What a request was about, so that its failure can be told in those terms. */
export interface SecretRequest {
  /** The verb the request needs (for an apply: patch, or create when the Secret is absent). */
  verb: string;
  name: string;
  namespace: string;
  /** The API server and how it was found (KubeConnection.source). */
  server: string;
  source: string;
  /** The tbot.yaml field errors name (`storage`, `outputs[0].destination`). */
  field: string;
}

/** The Role rule that lets tbot use the Secret `name` (deploy/kubernetes/role.yaml has it). */
export function roleRule(name: string): string {
  const verbs = SECRET_VERBS.map((v) => `"${v}"`).join(', ');
  return `{apiGroups: [""], resources: ["secrets"], resourceNames: ["${name}"], verbs: [${verbs}]}`;
}

/**
 * A 403 in the words an operator fixes it with: who was refused which verb on which Secret, and
 * the Role rule that grants it. The verb and user come from the API server's message (`User "X"
 * cannot create resource "secrets" ...`), which is the only place it says them.
 */
export function forbiddenMessage(req: SecretRequest, apiMessage: string | undefined): string {
  const verb = /cannot (\S+) resource/.exec(apiMessage ?? '')?.[1] ?? req.verb;
  const user = /User "([^"]+)"/.exec(apiMessage ?? '')?.[1];
  return (
    `the Kubernetes API refused to let ${user ?? 'tbot'} ${verb} the Secret "${req.name}" in namespace ` +
    `"${req.namespace}" (403 Forbidden). tbot needs ${SECRET_VERBS.join(', ')} on it: a Role in namespace ` +
    `"${req.namespace}" with the rule ${roleRule(req.name)}, bound to tbot's service account by a RoleBinding ` +
    "(deploy/kubernetes/role.yaml). Teleport's tbot chart grants every verb on every Secret of its namespace; " +
    "mwi's manifests grant these three on tbot's own Secrets only, so each Secret tbot.yaml names must be listed"
  );
}

/** Any failure of a request about a Secret, as the MwiError tbot reports (exit 2 at start). */
export function secretError(err: unknown, req: SecretRequest): MwiError {
  const bad = (message: string) =>
    new MwiError('BAD_CONFIG', message, { field: req.field, cause: err, detail: String(err) });
  // a file the connection reads for each request (the token) says what it is itself
  if (err instanceof MwiError) return err;
  if (!(err instanceof KubeApiError))
    return bad(`cannot reach the Kubernetes API at ${req.server} (${req.source}): ${ioReason(err)}`);
  const { message, reason } = err.body;
  switch (err.status) {
    case 403:
      return bad(forbiddenMessage(req, message));
    case 401:
      return bad(
        `the Kubernetes API at ${req.server} did not accept tbot's credential (401 Unauthorized; ${req.source}): ` +
          'in a pod, the service account token must be mounted (automountServiceAccountToken); with a kubeconfig, ' +
          "its user's token or client certificate must be valid",
      );
    case 404:
      if (err.body.details?.kind === 'namespaces')
        return bad(
          `namespace "${req.namespace}" does not exist in the cluster (${req.source}): create it, or set namespace ` +
            '(or $POD_NAMESPACE) to the one tbot runs in',
        );
      break;
    case 415:
      return bad(
        `the Kubernetes API at ${req.server} does not take server-side apply (415 Unsupported Media Type): tbot ` +
          'writes Secrets with it, which Kubernetes has had since 1.22',
      );
    case 422:
      return bad(`the Kubernetes API refused the Secret "${req.name}" as invalid: ${message ?? reason ?? 'no reason'}`);
  }
  return bad(
    `the Kubernetes API answered ${req.verb} on the Secret "${req.name}" in namespace "${req.namespace}" with ` +
      `HTTP ${err.status}${reason ? ` ${reason}` : ''}: ${message ?? '(no message)'}`,
  );
}

/** The error after every retry of a write found the Secret changed (409 each time). */
export function conflictError(req: SecretRequest, attempts: number): MwiError {
  return new MwiError(
    'BAD_CONFIG',
    `the Secret "${req.name}" in namespace "${req.namespace}" changed under every one of ${attempts} writes ` +
      '(409 Conflict): is another tbot writing it? A Secret has no lock: run one tbot per Secret (a Deployment ' +
      'with replicas: 1 and strategy Recreate, as deploy/kubernetes has)',
    { field: req.field },
  );
}
