import {
  LOCAL_ADMIN,
  OPERATOR_DEFAULT_TTL,
  OPERATOR_MAX_TTL,
  operatorNameProblem,
  type SignAdminReply,
  type SignAdminRequest,
} from '../api/admin.js';
import { parseClientKey } from '../crypto/keys.js';
import { issueCertificate } from '../crypto/x509.js';
import { failureReason, MwiError } from '../errors.js';
import { parseDuration } from '../util/duration.js';
import type { AdminClaims } from './connection-identity.js';
import type { AuthContext } from './context.js';
import { operatorLock } from './locks.js';

// Operator identities: admin client certificates carrying an operator's name, for tctl on
// another machine (`tctl auth sign --admin --user NAME`). The name is the identity's `user`
// claim: audit events record it as their actor, and a lock on `user: NAME` refuses it (see
// operatorLock). The local admin identity (user "admin") is the only one that may sign them, so a
// stolen operator identity cannot mint a fresh one under another name that no lock names.

const MAX_TTL_MS = parseDuration(OPERATOR_MAX_TTL)!;

/** POST sign/admin: checks the request, signs, audits `resource.created operator_identity/NAME`. */
export async function signOperatorIdentity(
  ctx: AuthContext,
  body: SignAdminRequest,
  caller: AdminClaims,
): Promise<SignAdminReply> {
  if (caller.user !== LOCAL_ADMIN)
    throw new MwiError(
      'ACCESS_DENIED',
      'an operator identity cannot sign identities: run tctl auth sign --admin on the Auth Service host, ' +
        'with its local admin identity',
    );
  const problem = operatorNameProblem(body.user);
  if (problem) throw new MwiError('BAD_REQUEST', problem, { field: 'user' });
  const ttl = body.ttl ?? OPERATOR_DEFAULT_TTL;
  const ttlMs = parseDuration(ttl);
  if (ttlMs === undefined || ttlMs <= 0)
    throw new MwiError('BAD_REQUEST', 'expected a duration such as 8h', { field: 'ttl' });
  if (ttlMs > MAX_TTL_MS)
    throw new MwiError(
      'BAD_REQUEST',
      `at most ${OPERATOR_MAX_TTL}: an operator identity is a short-lived credential like every other mwi issues; ` +
        'sign a new one when it expires',
      { field: 'ttl' },
    );
  const key = parseClientKey(body.public_key, 'public_key');
  const { certPem, notAfter, serial } = await issueCertificate({
    ca: ctx.cas.tlsUser,
    publicKey: key.spki,
    commonName: body.user,
    organization: ['mwi-admin'],
    ttlMs,
    usage: 'client',
    identity: { kind: 'admin', user: body.user },
    now: ctx.now(),
  });
  const expires = notAfter.toISOString();
  ctx.audit.emit({
    event: 'resource.created',
    success: true,
    resource: `operator_identity/${body.user}`,
    user: caller.user,
    tls_serial: serial,
    expires,
  });
  return {
    cert: certPem,
    ca_certs: [ctx.cas.tlsHost.certPem, ctx.cas.tlsUser.certPem],
    cluster_name: ctx.cas.clusterName,
    expires,
  };
}

/** Refuses every request of operator `user` while a lock on its name is in force (locks.ts). */
export function refuseLockedOperator(ctx: AuthContext, user: string): void {
  const lock = operatorLock(ctx, user);
  if (lock) throw new MwiError('ACCESS_DENIED', `operator identity ${user} is locked: ${lock}`);
}

/**
 * `admin.request`: one use of an operator identity, under its name. The route is named as in the
 * route table, never by the path sent (a path may hold a token's secret name): the handler's own
 * event (resource.deleted, ...) with the same request_id says what was acted on.
 */
export function auditOperatorRequest(ctx: AuthContext, user: string, route: string, remote: string, err?: unknown) {
  ctx.audit.emit({
    event: 'admin.request',
    success: err === undefined,
    user,
    route,
    remote_addr: remote,
    ...(err === undefined ? {} : { reason: failureReason(err) }),
  });
}
