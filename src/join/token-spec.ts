import { MwiError } from '../errors.js';
import { joinMethodInfo } from './catalog.js';
import { SERVER_METHODS } from './servers.js';

/** Spec keys every token has; each method adds its own block (`spec.github`, `spec.bound_keypair`). */
const COMMON_KEYS = ['roles', 'join_method', 'bot_name'];

/**
 * Spec keys of the methods whose fields are at the top of the spec (Teleport's ec2 and iam have no
 * block of their own): these are read, every other key but the common ones is noted as ignored.
 */
const SPEC_LEVEL: Readonly<Record<string, readonly string[]>> = {
  iam: ['allow'],
  ec2: ['allow', 'aws_iid_ttl'],
};

/** What a method proves instead of matching rules, for the refusal of `allow` rules it cannot use. */
const INSTEAD: Readonly<Record<string, string>> = {
  token: 'the join proves the secret that is the token name',
  bound_keypair: 'the join proves the registered key (spec.bound_keypair)',
};

/**
 * A token spec as it is stored: checked and normalized by its method's server half (secrets
 * hashed, rules in Teleport's place), with notes for the administrator on what was moved or is
 * ignored. Keys no method reads are kept as written (tctl get shows them) and noted.
 * `spec.join_method` must name a method of the catalog.
 */
export function prepareTokenSpec(
  input: Record<string, unknown>,
  now: number,
  previous?: Record<string, unknown>,
): { spec: Record<string, unknown>; shownOnce?: Record<string, string>; notes: string[] } {
  const method = String(input.join_method);
  const rules = input.allow;
  if (joinMethodInfo(method)?.allow === 'none' && !(rules === undefined || (Array.isArray(rules) && !rules.length)))
    throw new MwiError(
      'BAD_REQUEST',
      `join method ${method} takes no allow rules, in Teleport as in mwi: ${INSTEAD[method] ?? 'it has none'}`,
      { field: 'spec.allow' },
    );
  const prepare = SERVER_METHODS.get(method)?.prepareToken;
  const out = prepare ? prepare(input, now, previous) : { spec: input };
  const read = SPEC_LEVEL[method] ?? [method];
  const ignored = Object.keys(out.spec).filter((k) => !COMMON_KEYS.includes(k) && !read.includes(k));
  const notes = [
    ...(out.notes ?? []),
    ...ignored.map((k) => `spec.${k} is not used by join method ${method} (ignored)`),
  ];
  return { spec: out.spec, ...(out.shownOnce ? { shownOnce: out.shownOnce } : {}), notes };
}
