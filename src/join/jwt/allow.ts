import { JoinRefusal } from '../types.js';
import { ruleProblem, type AllowPolicy, type Matcher } from './rules.js';

export type { Matcher } from './rules.js';

/**
 * `*` matches any run of characters, `?` one; everything else literally; the whole value
 * (anchored). Linear in practice and never worse than pattern x value: a rule with many stars
 * cannot make a join spin (no regular expression, no backtracking blow-up).
 */
export function globMatch(pattern: string, value: string): boolean {
  const p = [...pattern];
  const v = [...value];
  let pi = 0;
  let vi = 0;
  // the latest star, and where in the value it started matching: a mismatch retries from there
  let star = -1;
  let from = 0;
  while (vi < v.length) {
    if (pi < p.length && (p[pi] === '?' || (p[pi] !== '*' && p[pi] === v[vi]))) {
      pi++;
      vi++;
    } else if (pi < p.length && p[pi] === '*') {
      star = pi++;
      from = vi;
    } else if (star >= 0) {
      pi = star + 1;
      vi = ++from;
    } else return false;
  }
  while (p[pi] === '*') pi++;
  return pi === p.length;
}

function matches(want: unknown, got: unknown, how: Matcher, listClaim: boolean): boolean {
  // a list in the rule: any of its values
  if (Array.isArray(want)) return want.length > 0 && want.some((w) => matches(w, got, how, listClaim));
  // a list claim (CircleCI contexts): any element; any other claim must be a scalar (no type confusion)
  if (listClaim) return Array.isArray(got) && got.some((g) => matches(want, g, how, false));
  if (typeof want === 'boolean') return got === want || got === String(want);
  if (typeof want !== 'string' || want === '') return false;
  if (typeof got !== 'string') return false;
  // a region (us-west1) covers its zones (us-west1-a); nothing shorter matches
  if (how === 'region-or-zone')
    return got === want || (got.startsWith(`${want}-`) && /^[a-z]$/.test(got.slice(want.length + 1)));
  // Azure ids and resource group names: the same whatever their case
  if (how === 'case-insensitive') return want.toLowerCase() === got.toLowerCase();
  return how === 'glob' ? globMatch(want, got) : want === got;
}

/** How one field of an `allow` rule fared against the claims. */
export interface FieldOutcome {
  field: string;
  claim: string;
  want: unknown;
  got: unknown;
  ok: boolean;
}

/** How one `allow` rule fared: every field, or the problem that makes it match nothing. */
export interface RuleOutcome {
  index: number;
  ok: boolean;
  fields: FieldOutcome[];
  /** Set when the stored rule is one creation would refuse now: it matches nothing. */
  problem?: string;
}

/** One rule against the claims: each field matched or not (a rule is an AND of its fields). */
export function ruleOutcome(
  rule: unknown,
  index: number,
  claims: Record<string, unknown>,
  policy: AllowPolicy,
): RuleOutcome {
  const problem = ruleProblem(rule, policy);
  if (problem) return { index, ok: false, fields: [], problem: `allow[${index}]${problem.field}: ${problem.message}` };
  const fields = Object.entries(rule as Record<string, unknown>).map(([field, want]): FieldOutcome => {
    const f = policy.fields[field]!;
    const got = claims[f.claim];
    return { field, claim: f.claim, want, got, ok: matches(want, got, f.match ?? 'exact', f.list === true) };
  });
  return { index, ok: fields.every((f) => f.ok), fields };
}

/** Every rule against the claims, for `tctl tokens test` (the join itself stops at the first match). */
export function explainAllow(rules: unknown, claims: Record<string, unknown>, policy: AllowPolicy): RuleOutcome[] {
  return Array.isArray(rules) ? rules.map((rule: unknown, i) => ruleOutcome(rule, i, claims, policy)) : [];
}

/**
 * `allow` rules: each rule is an AND of its fields, rules are OR'd, and an empty list refuses
 * everything. `policy.fields` maps a rule field to the claim it checks and how. A stored rule
 * that creation would refuse now (one naming no workload, stored before that check existed)
 * matches nothing, and the refusal says so in the audit log.
 */
export function checkAllow(
  rules: unknown,
  claims: Record<string, unknown>,
  policy: AllowPolicy,
): Record<string, unknown> {
  const { fields } = policy;
  if (!Array.isArray(rules) || rules.length === 0)
    throw new JoinRefusal('token has no allow rules', 'the join was refused: the token allows nothing');
  const skipped: string[] = [];
  for (const [i, rule] of (rules as unknown[]).entries()) {
    const outcome = ruleOutcome(rule, i, claims, policy);
    if (outcome.ok) return rule as Record<string, unknown>;
    if (outcome.problem) skipped.push(outcome.problem);
  }
  const seen = JSON.stringify(Object.fromEntries(Object.values(fields).map((f) => [f.claim, claims[f.claim]])));
  const ignored = skipped.length ? `; rules ignored: ${skipped.join('; ')}` : '';
  throw new JoinRefusal(
    `no allow rule matches (claims: ${seen})${ignored}`,
    "the join was refused: the identity token matches none of the token's allow rules",
  );
}
