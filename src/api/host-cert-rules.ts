// Which SSH host principals a role lets a bot certify: Teleport's own form, a role rule on the
// virtual `host_cert` resource with the `create` verb, narrowed by a `where` clause over
// `host_cert.principals` (Teleport's RFD 83). mwi reads the three functions Teleport's documents
// use for it; any other `where` on such a rule is refused when the role is written, because
// ignoring it would let the bot certify any host.

/** Most principals one host certificate may carry. */
export const MAX_HOST_PRINCIPALS = 32;

/** A DNS name's limit, for one principal. */
export const MAX_HOST_PRINCIPAL_LENGTH = 253;

/**
 * A host principal a bot may ask for: a host name or an IP address, or an OpenSSH pattern over
 * them (`*`, `?`): OpenSSH matches a host certificate's principals as patterns. No spaces, commas,
 * `!` or control characters (a comma or newline would split one principal into several in
 * known_hosts and sshd's logs).
 */
const PRINCIPAL = /^[A-Za-z0-9._:%*?-]+$/;

/** Whether a principal is an OpenSSH pattern (it vouches for every host it matches). */
export const isPattern = (p: string): boolean => /[*?]/.test(p);

/** Why a requested host principal is unacceptable, or undefined. */
export function hostPrincipalShapeProblem(p: string): string | undefined {
  if (p.length === 0 || p.length > MAX_HOST_PRINCIPAL_LENGTH)
    return `expected a host name or address of 1 to ${MAX_HOST_PRINCIPAL_LENGTH} characters`;
  if (!PRINCIPAL.test(p))
    return (
      `${JSON.stringify(p)} is not a host name or IP address: letters, digits, ".", "-", ":", "%" and the ` +
      'patterns "*" and "?" only (no spaces, commas or control characters)'
    );
  if (/[A-Z]/.test(p))
    return (
      `${JSON.stringify(p)} has uppercase letters: write host names in lowercase (ssh compares host names in ` +
      'lowercase, so a role rule on the lowercase name must see the name ssh will match)'
    );
  if (p.endsWith('.'))
    return (
      `${JSON.stringify(p)} ends with ".": leave the trailing dot out (to ssh "name." is another name than ` +
      '"name", which a role rule on "name" would not see)'
    );
  return undefined;
}

/** One call of the `where` clause, over host_cert.principals. */
type Check =
  | { fn: 'is_subset'; values: string[] }
  | { fn: 'all_equal'; values: [string] }
  | { fn: 'all_end_with'; values: [string] };

/** A parsed `where`: every check must hold (`&&`). No `where`: an empty list. */
export type HostCertWhere = readonly Check[];

const FUNCTIONS = ['is_subset', 'all_equal', 'all_end_with'] as const;

/** What a `where` on a host_cert rule may say, for the error that refuses anything else. */
export const WHERE_FORMS =
  'mwi reads is_subset(host_cert.principals, "a", "b", ...), all_equal(host_cert.principals, "a") and ' +
  'all_end_with(host_cert.principals, ".example.com"), joined with &&';

/**
 * Parses the `where` of a host_cert rule; a string says why it cannot be read. Strings are
 * double-quoted without escapes (a host principal never needs one).
 */
export function parseHostCertWhere(where: string): HostCertWhere | string {
  const checks: Check[] = [];
  for (const part of where.split('&&')) {
    const m = /^\s*([a-z_]+)\s*\(\s*host_cert\.principals\s*((?:,\s*"[^"\\]*"\s*)+)\)\s*$/.exec(part);
    const fn = m?.[1] as (typeof FUNCTIONS)[number] | undefined;
    if (!m || !fn || !(FUNCTIONS as readonly string[]).includes(fn)) return `cannot read ${JSON.stringify(where)}`;
    const values = [...m[2]!.matchAll(/"([^"\\]*)"/g)].map((v) => v[1]!);
    if (fn === 'is_subset') checks.push({ fn, values });
    else if (values.length !== 1) return `${fn} takes one value after host_cert.principals`;
    else checks.push({ fn, values: [values[0]!] });
  }
  return checks;
}

/** Host names compare in lowercase, as ssh compares them (a role may list `DB.example.com`). */
const lower = (values: readonly string[]): string[] => values.map((v) => v.toLowerCase());

/**
 * Whether `where` allows certifying all of `principals` together. A pattern principal (`*.x`)
 * is allowed only where the role names it exactly (is_subset, all_equal): a suffix or a rule
 * without `where` allows host names, never a pattern that would vouch for many hosts. Names and
 * the role's values compare in lowercase.
 */
export function whereAllows(where: HostCertWhere, principals: readonly string[]): boolean {
  const asked = lower(principals);
  for (const p of asked) {
    if (!isPattern(p)) continue;
    if (!where.some((c) => c.fn !== 'all_end_with' && lower(c.values).includes(p))) return false;
  }
  return where.every((c) => {
    const values = lower(c.values);
    return asked.every((p) => (c.fn === 'all_end_with' ? p.endsWith(values[0]!) : values.includes(p)));
  });
}

/** A role rule as Teleport writes it (resources, verbs, where); other keys are not read. */
export interface RoleRule {
  resources?: unknown;
  verbs?: unknown;
  where?: unknown;
}

const listHas = (l: unknown, v: string): boolean => Array.isArray(l) && (l.includes(v) || l.includes('*'));

/** Whether a rule is about creating host certificates (Teleport's `host_cert` + `create`, or `*`). */
export function isHostCertRule(rule: RoleRule): boolean {
  return listHas(rule.resources, 'host_cert') && listHas(rule.verbs, 'create');
}

/**
 * The host_cert rules of a role's `rules` list, parsed; a string (with the rule's index) says
 * why one cannot be honoured.
 */
export function hostCertRules(rules: unknown): Array<{ index: number; where: HostCertWhere }> | string {
  if (!Array.isArray(rules)) return [];
  const out: Array<{ index: number; where: HostCertWhere }> = [];
  for (const [index, rule] of rules.entries()) {
    if (typeof rule !== 'object' || rule === null || !isHostCertRule(rule as RoleRule)) continue;
    const where = (rule as RoleRule).where;
    if (where === undefined || where === '') {
      out.push({ index, where: [] });
      continue;
    }
    const parsed = typeof where === 'string' ? parseHostCertWhere(where) : 'expected a string';
    if (typeof parsed === 'string') return `${index}: ${parsed}`;
    out.push({ index, where: parsed });
  }
  return out;
}
