import { MwiError } from '../../errors.js';
import { ioReason } from '../../util/io-reason.js';
import { KubeApiError, KubeRequestCut } from '../kube/client.js';

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

/** The Role rule that lets tbot use the Secret `name` (deploy/kubernetes/role.yaml and output-role.yaml have it). */
export function roleRule(name: string): string {
  const verbs = SECRET_VERBS.map((v) => `"${v}"`).join(', ');
  return `{apiGroups: [""], resources: ["secrets"], resourceNames: ["${name}"], verbs: [${verbs}]}`;
}

/**
 * A user name the API server's message may name in ours: what Kubernetes' own names are made of
 * (`system:serviceaccount:NS:NAME`, a certificate's CN, an OIDC e-mail). Anything else (quotes,
 * spaces, line breaks, terminal escapes, `::error::`) is not repeated: the message is the API
 * server's text, and it ends up on tbot's error line and in CI logs.
 */
const SAFE_USER = /^[A-Za-z0-9][-A-Za-z0-9_.:@+=/]{0,252}$/;
/** A Kubernetes verb (get, patch, create, ...). */
const SAFE_VERB = /^[a-z]{1,32}$/;
/** A Status reason (NotFound, InternalError, ...). */
const SAFE_REASON = /^[A-Za-z]{1,64}$/;
/** At most this much of the API server's own message is quoted. */
const MAX_QUOTED = 300;

/** The API server's message, quoted: one line, at most MAX_QUOTED characters (escaping is the printer's). */
function quoted(message: string): string {
  const line = message.replace(/\s+/g, ' ').trim();
  return line.length > MAX_QUOTED ? `${line.slice(0, MAX_QUOTED)}...` : line;
}

/**
 * A 403 in the words an operator fixes it with: who was refused which verb on which Secret, and
 * the Role rule that grants it. The verb and user come from the API server's message (`User "X"
 * cannot create resource "secrets" ...`), which is the only place it says them; each is used only
 * when it looks like one (SAFE_USER, SAFE_VERB), else the request's verb and "tbot".
 */
export function forbiddenMessage(req: SecretRequest, apiMessage: string | undefined): string {
  const saidVerb = /cannot (\S+) resource/.exec(apiMessage ?? '')?.[1];
  const verb = saidVerb && SAFE_VERB.test(saidVerb) ? saidVerb : req.verb;
  const saidUser = /User "([^"]+)"/.exec(apiMessage ?? '')?.[1];
  const user = saidUser && SAFE_USER.test(saidUser) ? saidUser : undefined;
  return (
    `the Kubernetes API refused to let ${user ?? 'tbot'} ${verb} the Secret "${req.name}" in namespace ` +
    `"${req.namespace}" (403 Forbidden). tbot needs ${SECRET_VERBS.join(', ')} on it: a Role in namespace ` +
    `"${req.namespace}" with the rule ${roleRule(req.name)}, bound to tbot's service account by a RoleBinding ` +
    "(deploy/kubernetes: role.yaml in tbot's namespace, output-role.yaml in the workloads'). Teleport's tbot " +
    'chart grants every verb on every Secret of its namespace; ' +
    "mwi's manifests grant these three on tbot's own Secrets only, so each Secret tbot.yaml names must be listed"
  );
}

/**
 * Any failure of a request about a Secret, as the MwiError tbot reports (exit 2 at start); a
 * request cut because tbot is stopping is not the configuration's fault: an Error (exit 1).
 */
export function secretError(err: unknown, req: SecretRequest): MwiError | KubeRequestCut {
  const bad = (message: string) =>
    new MwiError('BAD_CONFIG', message, { field: req.field, cause: err, detail: String(err) });
  // a file the connection reads for each request (the token) says what it is itself
  if (err instanceof MwiError) return err;
  const what = `${req.verb} the Secret "${req.name}" in namespace "${req.namespace}"`;
  if (err instanceof KubeRequestCut) {
    if (err.why === 'stopped') {
      err.message = `${req.field}: ${err.message} (${what}; ${req.server})`;
      return err;
    }
    return bad(
      `the Kubernetes API at ${req.server} (${req.source}) gave no complete answer to ${what} within ` +
        `${err.afterMs / 1000} s: a request that takes longer is cut, so that a stalled server cannot hang tbot`,
    );
  }
  if (!(err instanceof KubeApiError))
    return bad(`cannot reach the Kubernetes API at ${req.server} (${req.source}): ${ioReason(err)}`);
  // the Status object is the API server's: a field of another type is left out
  const message = typeof err.body.message === 'string' ? err.body.message : undefined;
  const reason = typeof err.body.reason === 'string' && SAFE_REASON.test(err.body.reason) ? err.body.reason : undefined;
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
      return bad(
        `the Kubernetes API refused the Secret "${req.name}" as invalid: ${quoted(message ?? reason ?? 'no reason')}`,
      );
  }
  return bad(
    `the Kubernetes API answered ${req.verb} on the Secret "${req.name}" in namespace "${req.namespace}" with ` +
      `HTTP ${err.status}${reason ? ` ${reason}` : ''}: ` +
      quoted(message ?? '(no message)'),
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
