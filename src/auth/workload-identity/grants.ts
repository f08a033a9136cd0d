import type { Role } from '../../api/resources.js';

/** A role's label selector as Teleport writes it: each key to a value or a list of values. */
export type LabelSelector = Record<string, string | string[]>;

/**
 * Teleport's label matching: every key of the selector must match (a `*` value: any value of
 * that key; `'*': '*'`: every resource); an empty selector matches nothing.
 */
export function labelsMatch(selector: LabelSelector | undefined, labels: Readonly<Record<string, string>>): boolean {
  const entries = Object.entries(selector ?? {});
  if (entries.length === 0) return false;
  return entries.every(([k, v]) => {
    const values = Array.isArray(v) ? v : [v];
    if (k === '*') return values.includes('*');
    // own keys only: `constructor` or `__proto__` must not find Object.prototype's (issue #16, L3)
    const have = Object.hasOwn(labels, k) ? labels[k] : undefined;
    return typeof have === 'string' && (values.includes('*') || values.includes(have));
  });
}

const selectorOf = (part: Role['spec']['allow'] | Role['spec']['deny']): LabelSelector | undefined =>
  (part as { workload_identity_labels?: LabelSelector }).workload_identity_labels;

/**
 * Whether the roles grant a workload identity with these labels: some role's
 * `allow.workload_identity_labels` matches and no role's `deny.workload_identity_labels` does.
 * Returns undefined when granted, else why (for the audit log).
 */
export function grantRefusal(roles: readonly Role[], labels: Readonly<Record<string, string>>): string | undefined {
  const denied = roles.find((r) => labelsMatch(selectorOf(r.spec.deny), labels));
  if (denied) return `role ${denied.metadata.name} denies it (deny.workload_identity_labels)`;
  if (roles.some((r) => labelsMatch(selectorOf(r.spec.allow), labels))) return undefined;
  const names = roles.map((r) => r.metadata.name).join(', ') || 'none';
  return `no role of the bot (${names}) grants its labels (allow.workload_identity_labels)`;
}
