import { TEMPLATE } from '../../api/workload-identity-resource.js';
import { MwiError } from '../../errors.js';
import type { AttributeMap } from './attributes.js';

/**
 * Fills `{{ attribute }}` in a template, once: a value that itself holds `{{` stays as it is
 * (no second pass). An attribute the request lacks refuses issuance, naming it.
 */
export function fillTemplate(template: string, attrs: AttributeMap, field: string): string {
  return template.replace(TEMPLATE, (_, name: string) => {
    const v = attrs.get(name);
    if (v === undefined)
      throw new MwiError('ACCESS_DENIED', `the template in ${field} names ${name}, which this request does not have`, {
        field,
      });
    return v;
  });
}
