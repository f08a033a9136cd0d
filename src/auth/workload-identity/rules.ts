import type { Condition, WorkloadIdentity } from '../../api/workload-identity-resource.js';
import type { AttributeMap } from './attributes.js';

/** Why a condition fails for these attributes (for the operator: names the attribute), if it does. */
function conditionFailure(c: Condition, attrs: AttributeMap): string | undefined {
  const v = attrs.get(c.attribute);
  if (v === undefined) return `${c.attribute} is not set`;
  if (c.eq && v !== c.eq.value) return `${c.attribute} is ${JSON.stringify(v)}, not ${JSON.stringify(c.eq.value)}`;
  if (c.not_eq && v === c.not_eq.value) return `${c.attribute} is ${JSON.stringify(v)}`;
  if (c.in && !c.in.values.includes(v)) return `${c.attribute} is ${JSON.stringify(v)}, not in the list`;
  if (c.not_in && c.not_in.values.includes(v)) return `${c.attribute} is ${JSON.stringify(v)}, in the not_in list`;
  return undefined;
}

/**
 * Teleport's rule semantics: no rules pass; otherwise at least one rule must have every one of
 * its conditions pass. Returns undefined when they pass, else why each rule failed
 * (`rules.allow[0]: workload.unix.uid is "1000", not "0"`), for the audit log only.
 */
export function rulesFailure(wi: WorkloadIdentity, attrs: AttributeMap): string | undefined {
  const rules = wi.spec.rules.allow;
  if (rules.length === 0) return undefined;
  const why: string[] = [];
  for (const [i, rule] of rules.entries()) {
    const failed = rule.conditions.map((c, j) => ({ j, f: conditionFailure(c, attrs) })).find((x) => x.f !== undefined);
    if (!failed) return undefined;
    why.push(`rules.allow[${i}].conditions[${failed.j}]: ${failed.f}`);
  }
  return why.join('; ');
}
