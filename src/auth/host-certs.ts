import { z } from 'zod';
import {
  hostCertRules,
  hostPrincipalShapeProblem,
  isPattern,
  MAX_HOST_PRINCIPALS,
  whereAllows,
  type HostCertWhere,
} from '../api/host-cert-rules.js';
import type { Role } from '../api/resources.js';
import type { HostCertResponse } from '../api/wire.js';
import { sshBlobOfClientKey, signSshCertificate } from '../crypto/ssh.js';
import { BACKDATE_MS } from '../crypto/x509.js';
import { MwiError } from '../errors.js';
import { outputCertHandler } from './output-certs.js';

const request = z.object({
  public_key: z.string({ message: 'expected a PEM public key' }),
  principals: z
    .array(z.string({ message: 'expected a host name' }), { message: 'expected a list of host names' })
    .min(1, 'expected at least one host name')
    .max(MAX_HOST_PRINCIPALS, `at most ${MAX_HOST_PRINCIPALS} host names`),
  ttl_seconds: z.number().optional(),
});

/** The `where` clauses of the roles' host_cert rules (roles were checked when written). */
function rulesOf(roles: Role[], part: 'allow' | 'deny'): HostCertWhere[] {
  return roles.flatMap((r) => {
    const rules = hostCertRules(r.spec[part].rules);
    return typeof rules === 'string' ? [] : rules.map((x) => x.where);
  });
}

/**
 * Refuses principals the roles do not allow together: one allow rule on host_cert must allow all
 * of them (as Teleport evaluates a rule's `where` over the whole list), and no deny rule match.
 * A refusal is BAD_REQUEST naming `principals`, not ACCESS_DENIED: the bot may keep running
 * its other outputs while its configuration or its roles are fixed.
 */
export function checkHostPrincipals(roles: Role[], principals: readonly string[]): void {
  const allow = rulesOf(roles, 'allow');
  const hint =
    'a role of the bot needs an allow rule { resources: [host_cert], verbs: [create], where: ' +
    'is_subset(host_cert.principals, "HOST", ...) } (Teleport\'s host_cert rule)';
  if (allow.length === 0)
    throw new MwiError('BAD_REQUEST', `the bot's roles allow no host certificates: ${hint}`, { field: 'principals' });
  if (!allow.some((w) => whereAllows(w, principals)))
    throw new MwiError(
      'BAD_REQUEST',
      `the bot's roles do not allow host principals ${principals.join(', ')}: ${hint}; a pattern (*, ?) ` +
        'only where a rule lists it exactly',
      { field: 'principals' },
    );
  // stricter than Teleport's list-wide reading: one denied principal refuses the request, and a
  // pattern (which could match a denied name) is refused wherever any deny rule exists
  const denied = (w: HostCertWhere, p: string) => w.length === 0 || isPattern(p) || whereAllows(w, [p]);
  if (rulesOf(roles, 'deny').some((w) => principals.some((p) => denied(w, p))))
    throw new MwiError('BAD_REQUEST', `a deny rule on host_cert of the bot's roles refuses ${principals.join(', ')}`, {
      field: 'principals',
    });
}

/**
 * POST /v1/certs/ssh_host: an OpenSSH host certificate for a host key tbot generated, for
 * principals the bot's roles allow, with the bot's certificate TTL rules; audited as bot.certs
 * with `output: ssh_host`, the serial and the principals.
 */
export const handleHostCert = outputCertHandler<z.infer<typeof request>, HostCertResponse>({
  schema: request,
  output: 'ssh_host',
  precheck(req) {
    for (const [i, p] of req.principals.entries()) {
      const problem = hostPrincipalShapeProblem(p);
      if (problem) throw new MwiError('BAD_REQUEST', problem, { field: `principals[${i}]` });
    }
  },
  async issue({ ctx, c, req, publicKey, access, ttlMs }) {
    const principals = [...new Set(req.principals)];
    checkHostPrincipals(access.roles, principals);
    const now = ctx.now();
    const expires = new Date(now + ttlMs);
    const ssh = await signSshCertificate({
      caKey: ctx.cas.sshHost.key,
      caBlob: ctx.cas.sshHost.blob,
      subjectBlob: sshBlobOfClientKey(publicKey),
      certType: 'host',
      // sshd and ssh print it: which bot and instance vouched for this host
      keyId: `bot-${c.bot}/${c.instance}`,
      principals,
      validAfter: new Date(now - BACKDATE_MS),
      validBefore: expires,
    });
    return {
      audit: { ssh_serial: ssh.serial, principals },
      expires,
      reply: {
        ssh_cert: ssh.cert,
        ssh_user_ca_keys: [ctx.cas.sshUser.publicLine],
        ssh_host_ca_keys: [ctx.cas.sshHost.publicLine],
        principals,
        expires: expires.toISOString(),
        cluster_name: ctx.cas.clusterName,
      },
    };
  },
});
