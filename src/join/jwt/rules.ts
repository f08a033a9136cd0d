import { MwiError } from '../../errors.js';

/** How a rule field compares with a claim. */
export type Matcher = 'exact' | 'glob' | 'region-or-zone' | 'case-insensitive';

/** One `allow` rule field: the claim it checks, how, and the value type a rule may give it. */
export interface AllowField {
  claim: string;
  match?: Matcher;
  /** The claim is a list (CircleCI contexts): the rule's value matches any element. */
  list?: boolean;
  /** The rule value: a non-empty string (default), a boolean, or a non-empty list of strings. */
  type?: 'string' | 'boolean' | 'strings';
  /** A shape the value must have (Kubernetes `namespace:name`). */
  format?: { pattern: RegExp; hint: string };
}

/**
 * What a method's `allow` rules may say: the fields, and the groups of fields of which each rule
 * must set at least one (every group), so that a rule always names the workload.
 */
export interface AllowPolicy {
  fields: Readonly<Record<string, AllowField>>;
  requireOneOf: ReadonlyArray<ReadonlyArray<string>>;
}

/** A rule's problem: the field at fault (`''` for the rule itself) and what is wrong. */
export interface RuleProblem {
  field: string;
  message: string;
}

const isWildcardOnly = (v: string) => /^[*?]*$/.test(v);

function valueProblem(value: unknown, f: AllowField): string | undefined {
  const type = f.type ?? 'string';
  if (type === 'boolean') return typeof value === 'boolean' ? undefined : 'expected true or false';
  if (type === 'strings') {
    if (!Array.isArray(value) || value.length === 0) return 'expected a non-empty list of strings';
    if (!value.every((v) => typeof v === 'string' && v !== '')) return 'expected a list of non-empty strings';
    return undefined;
  }
  if (typeof value !== 'string')
    return `expected a string, not ${Array.isArray(value) ? 'a list' : value === null ? 'null' : typeof value}`;
  if (value === '') return 'expected a non-empty string';
  if (f.format && !f.format.pattern.test(value)) return f.format.hint;
  return undefined;
}

/** Whether a set field names something: a glob of wildcards only matches every workload. */
function names(value: unknown, f: AllowField): boolean {
  if (f.match === 'glob' && typeof value === 'string') return !isWildcardOnly(value);
  return true;
}

/**
 * The first problem of one `allow` rule under `policy`, or undefined if the rule is acceptable:
 * a mapping of known fields, each value of its field's type, naming the workload (Teleport
 * refuses the same rules in api/types/provisioning.go).
 */
export function ruleProblem(rule: unknown, policy: AllowPolicy): RuleProblem | undefined {
  if (typeof rule !== 'object' || rule === null || Array.isArray(rule))
    return { field: '', message: 'expected a mapping of field: value' };
  const entries = Object.entries(rule);
  if (entries.length === 0) return { field: '', message: 'an empty rule would allow nothing' };
  for (const [k, v] of entries) {
    const f = policy.fields[k];
    if (!f)
      return {
        field: `.${k}`,
        message: `unknown field ${k} (expected one of: ${Object.keys(policy.fields).join(', ')})`,
      };
    const problem = valueProblem(v, f);
    if (problem) return { field: `.${k}`, message: problem };
  }
  const set = rule as Record<string, unknown>;
  for (const group of policy.requireOneOf) {
    if (!group.some((k) => set[k] !== undefined && names(set[k], policy.fields[k]!))) {
      return {
        field: '',
        message:
          `the rule must name the workload with at least one of: ${group.join(', ')} (a rule without one ` +
          `matches every workload on the platform; glob fields need more than wildcards)`,
      };
    }
  }
  return undefined;
}

/**
 * Refuses a token's `allow` list at creation: at least one rule, each acceptable under `policy`.
 * `field` is where the list was written (`spec.github.allow`, or the deprecated `spec.allow`).
 */
export function assertAllowRules(allow: unknown, policy: AllowPolicy, field: string): void {
  if (!Array.isArray(allow) || allow.length === 0)
    throw new MwiError('BAD_REQUEST', 'at least one allow rule is required', { field });
  allow.forEach((rule: unknown, i) => {
    const p = ruleProblem(rule, policy);
    if (p) throw new MwiError('BAD_REQUEST', p.message, { field: `${field}[${i}]${p.field}` });
  });
}
