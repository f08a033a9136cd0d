import { TEMPLATE } from '../../api/workload-identity-resource.js';
import { MwiError } from '../../errors.js';
import type { AttributeMap } from './attributes.js';

/**
 * Fills `{{ attribute }}` in a template, once: a value that itself holds `{{` stays as it is
 * (no second pass). An attribute the request lacks refuses issuance, naming it. `valueProblem`
 * checks each value before it is put in (the SPIFFE ID's: one path segment at most).
 */
export function fillTemplate(
  template: string,
  attrs: AttributeMap,
  field: string,
  valueProblem?: (value: string) => string | undefined,
): string {
  return template.replace(TEMPLATE, (_, name: string) => {
    const v = attrs.get(name);
    if (v === undefined)
      throw new MwiError('ACCESS_DENIED', `the template in ${field} names ${name}, which this request does not have`, {
        field,
      });
    const problem = valueProblem?.(v);
    if (problem) throw new MwiError('BAD_REQUEST', `the value of ${name} ${problem}`, { field });
    return v;
  });
}

/**
 * Rule: an attribute put into a SPIFFE ID stays within its path segment. Its value must be
 * letters, digits, ".", "-" or "_" (the SPIFFE-ID segment characters), and not "." or "..": a
 * "/" would add segments, "%" an escape, ".." climb a level; the whole ID is checked after too.
 */
export function segmentValueProblem(value: string): string | undefined {
  if (value === '' || value === '.' || value === '..' || !/^[A-Za-z0-9._-]+$/.test(value))
    return 'cannot go into a SPIFFE ID path: only letters, digits, ".", "-" and "_" may (not "/", "%", "." or "..")';
  return undefined;
}
