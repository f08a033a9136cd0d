import { joinMethodInfo } from './catalog.js';

// Where a token keeps its `allow` rules. Teleport keeps a platform method's rules under the
// method (`spec.github.allow`, `spec.kubernetes.allow`, ...) and `spec.allow` for ec2 and iam
// only; mwi stores and prints Teleport's placement. Tokens stored before mwi followed it have
// their rules at `spec.allow`: they are read from there as long as the method's block has none.
// ec2 and iam read `spec.allow` only.

type Spec = Readonly<Record<string, unknown>>;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The method's block of a spec (`spec.github`), `{}` when absent or null; undefined when it is no mapping. */
function blockOf(spec: Spec, method: string): Record<string, unknown> | undefined {
  const block = spec[method] ?? {};
  return isRecord(block) ? block : undefined;
}

/** Whether the method keeps `allow` rules under its block (every platform method). */
export function rulesUnderMethod(method: string): boolean {
  return joinMethodInfo(method)?.allow === 'method';
}

/** The `allow` rules of a stored token of `method`: under the method, else at `spec.allow` (stored before). */
export function storedRules(spec: Spec, method: string): unknown {
  if (joinMethodInfo(method)?.allow === 'spec') return spec.allow;
  const under = blockOf(spec, method)?.allow;
  return under !== undefined ? under : spec.allow;
}

/** The method's block without its rules: what the method's own schema checks. */
export function methodOptions(spec: Spec, method: string): unknown {
  const block = spec[method] ?? {};
  if (!isRecord(block)) return block;
  const { allow: _rules, ...options } = block;
  return options;
}

/**
 * The spec with its rules in Teleport's place: rules at `spec.allow` move under the method when
 * the method has none there (`moved`). Anything else is left as it is, for the method's checks
 * to name: rules in both places, a block that is no mapping, a method that takes no rules.
 */
export function teleportPlacement(spec: Spec, method: string): { spec: Spec; moved: boolean } {
  const block = blockOf(spec, method);
  if (!rulesUnderMethod(method) || spec.allow === undefined || !block || block.allow !== undefined)
    return { spec, moved: false };
  const { allow, ...rest } = spec;
  return { spec: { ...rest, [method]: { ...block, allow } }, moved: true };
}
