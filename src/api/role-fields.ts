import { MwiError } from '../errors.js';

// Teleport roles (v5 to v8) have many more fields than mwi reads. mwi issues SSH user
// certificates (logins, extensions, lifetime) and bot identities, nothing else. A field it does
// not read is accepted with a note when ignoring it grants nothing: access to what mwi issues no
// credential for (Kubernetes, databases, apps, desktops, clouds, Teleport's own API), or a
// setting only Teleport's own services enforce. A field that would shape mwi's certificates in
// a way mwi cannot honour is refused: ignoring it would grant more than the role says.

/** The fields of each part of a role spec that mwi reads (see roleSchema). */
const USED: Readonly<Record<'options' | 'allow' | 'deny', readonly string[]>> = {
  options: ['max_session_ttl', 'forward_agent', 'permit_x11_forwarding', 'port_forwarding', 'ssh_port_forwarding'],
  allow: ['logins', 'workload_identity_labels'],
  deny: ['logins', 'workload_identity_labels'],
};

/** Whether a value leaves a field as if unset (false, empty): mwi then does what the field asks. */
const isUnset = (v: unknown): boolean =>
  v === undefined || v === null || v === false || v === '' || (typeof v === 'object' && Object.keys(v).length === 0);

/** `'*': '*'` (or `'*': ['*']`): every node, which is what an mwi certificate is good for. */
function everyNode(labels: unknown): boolean {
  if (typeof labels !== 'object' || labels === null || Array.isArray(labels)) return false;
  const entries = Object.entries(labels as Record<string, unknown>);
  const star = entries[0]?.[1];
  return (
    entries.length === 1 && entries[0]![0] === '*' && (star === '*' || (Array.isArray(star) && star.join() === '*'))
  );
}

const NODES =
  'an mwi certificate is accepted by every host that trusts the user CA, so mwi cannot limit it to nodes with ' +
  'labels: remove it and choose the hosts by which ones trust the CA (TrustedUserCAKeys)';

const WORKLOAD_EXPRESSION =
  "mwi does not evaluate Teleport's label expressions, and ignoring a deny would grant what it denies: write it " +
  'as deny.workload_identity_labels';

/** Options mwi cannot honour, with the values that ask for it and why the role is refused. */
const OPTIONS_REFUSED: Readonly<Record<string, { applies: (v: unknown) => boolean; why: string }>> = {
  pin_source_ip: {
    applies: (v) => !isUnset(v),
    why: 'pins certificates to the client address; mwi certificates carry no source-address restriction',
  },
  require_session_mfa: {
    applies: (v) => !isUnset(v) && v !== 'off',
    why: 'requires MFA (or a hardware key) for each session, which mwi cannot enforce for a bot',
  },
  device_trust_mode: {
    applies: (v) => v === 'required',
    why: 'requires a trusted device, which mwi cannot check (required-for-humans exempts bots)',
  },
  cert_extensions: {
    applies: (v) => !isUnset(v),
    why: 'adds extensions to the SSH certificates, which mwi does not implement',
  },
};

type Conditions = Readonly<Record<string, unknown>>;

/** Why a role's allow or deny conditions cannot be honoured, if they cannot. */
function conditionsRefusal(part: 'allow' | 'deny', c: Conditions): { field: string; why: string } | undefined {
  // a deny mwi cannot evaluate would, ignored, grant what it denies
  if (part === 'deny' && !isUnset(c.workload_identity_labels_expression))
    return { field: 'workload_identity_labels_expression', why: WORKLOAD_EXPRESSION };
  const logins = Array.isArray(c.logins) && c.logins.length > 0;
  // an allow condition limits this role's own logins; a deny condition takes nodes away from every role
  const limits = part === 'deny' || logins;
  if (limits && !isUnset(c.node_labels_expression)) return { field: 'node_labels_expression', why: NODES };
  if (!limits || isUnset(c.node_labels) || (part === 'allow' && everyNode(c.node_labels))) return undefined;
  return { field: 'node_labels', why: NODES };
}

/** Whether a set field mwi does not read asks for what mwi does anyway (no note then). */
function asMwiDoes(part: 'options' | 'allow' | 'deny', field: string, v: unknown): boolean {
  // a refusable option that got here asks for nothing more than mwi does
  if (part === 'options') return Object.hasOwn(OPTIONS_REFUSED, field);
  return part === 'allow' && field === 'node_labels' && everyNode(v);
}

/**
 * Checks the fields of a role spec mwi does not read: throws for one mwi cannot honour (naming
 * it and why), and returns a note for each part with fields it ignores, e.g.
 * `spec.allow.kubernetes_labels is not used by mwi (ignored)`.
 */
export function roleFieldNotes(spec: { options: Conditions; allow: Conditions; deny: Conditions }): string[] {
  for (const [name, rule] of Object.entries(OPTIONS_REFUSED)) {
    if (rule.applies(spec.options[name]))
      throw new MwiError('BAD_REQUEST', rule.why, { field: `spec.options.${name}` });
  }
  for (const part of ['allow', 'deny'] as const) {
    const refusal = conditionsRefusal(part, spec[part]);
    if (refusal) throw new MwiError('BAD_REQUEST', refusal.why, { field: `spec.${part}.${refusal.field}` });
  }
  const notes: string[] = [];
  for (const part of ['options', 'allow', 'deny'] as const) {
    const ignored = Object.entries(spec[part])
      // an empty field grants and limits nothing: no note
      .filter(([k, v]) => !USED[part].includes(k) && !isUnset(v) && !asMwiDoes(part, k, v))
      .map(([k]) => `spec.${part}.${k}`);
    if (ignored.length === 1) notes.push(`${ignored[0]} is not used by mwi (ignored)`);
    if (ignored.length > 1) notes.push(`${ignored.join(', ')} are not used by mwi (ignored)`);
  }
  return notes;
}
