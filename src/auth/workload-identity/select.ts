import type { Role } from '../../api/resources.js';
import type { WorkloadIdentity } from '../../api/workload-identity-resource.js';
import type { Selector } from '../../api/workload-identity.js';
import { MwiError } from '../../errors.js';
import type { AttributeMap } from './attributes.js';
import { ALL, type WorkloadContext } from './context.js';
import { grantRefusal, labelsMatch } from './grants.js';
import { rulesFailure } from './rules.js';

/** Most SVIDs one request is issued (each one is a signature and a few KB of answer). */
export const MAX_IDENTITIES_PER_REQUEST = 32;

/** How many refused identities an audit event names (with their reasons); the rest are counted. */
export const REFUSED_NAMED = 5;

/** The refused identities as an audit event records them: how many, and the first few with why. */
export function refusedSummary(refused: Selected['refused']): { count: number; first: string[] } {
  return { count: refused.length, first: refused.slice(0, REFUSED_NAMED).map((r) => `${r.name}: ${r.reason}`) };
}

/** The identities a request may have, and why each other one it selected was refused (audit only). */
export interface Selected {
  granted: WorkloadIdentity[];
  refused: Array<{ name: string; reason: string }>;
}

/**
 * The workload identities a selector names that the bot's roles grant and whose rules the
 * attributes pass. None: ACCESS_DENIED, whose message says what to check without naming any
 * other identity or its rules (the reasons go to the audit log as `detail`).
 */
export async function selectIdentities(
  w: WorkloadContext,
  selector: Selector,
  roles: readonly Role[],
  attrs: AttributeMap,
  now: number,
): Promise<Selected> {
  let candidates: WorkloadIdentity[];
  if (selector.name !== undefined) {
    const one = await w.identities.fresh(selector.name);
    candidates = one ? [one] : [];
  } else {
    const wanted = selector.labels!;
    candidates = [...w.identities.lookup(ALL)].filter((wi) => labelsMatch(wanted, wi.metadata.labels ?? {}));
  }
  const granted: WorkloadIdentity[] = [];
  const refused: Selected['refused'] = [];
  for (const wi of candidates) {
    if (wi.metadata.expires && Date.parse(wi.metadata.expires) <= now) continue;
    const reason = grantRefusal(roles, wi.metadata.labels ?? {}) ?? rulesFailure(wi, attrs);
    if (reason) refused.push({ name: wi.metadata.name, reason });
    else granted.push(wi);
  }
  // in name order: a file output writes the first, the same one on every renewal
  granted.sort((x, y) => (x.metadata.name < y.metadata.name ? -1 : x.metadata.name > y.metadata.name ? 1 : 0));
  // refused rather than cut: the same selector would give different identities as resources come and go
  if (granted.length > MAX_IDENTITIES_PER_REQUEST)
    throw new MwiError(
      'BAD_REQUEST',
      `the selector matches ${granted.length} workload identities granted to this bot; at most ` +
        `${MAX_IDENTITIES_PER_REQUEST} are issued per request: select by name or with narrower labels`,
      { field: 'selector' },
    );
  if (granted.length > 0) return { granted, refused };
  const what =
    selector.name !== undefined
      ? `workload_identity ${JSON.stringify(selector.name)} does not exist, is not granted to this bot ` +
        "(its roles' allow.workload_identity_labels), or its rules do not match this workload's attributes"
      : "no workload_identity with these labels is granted to this bot (its roles' allow.workload_identity_labels) " +
        "with rules this workload's attributes match";
  const detail =
    refused.length > 0
      ? [
          ...refusedSummary(refused).first,
          ...(refused.length > REFUSED_NAMED ? [`and ${refused.length - REFUSED_NAMED} more`] : []),
        ].join('; ')
      : selector.name !== undefined
        ? `no workload_identity ${JSON.stringify(selector.name)}`
        : 'no workload_identity has these labels';
  throw new MwiError('ACCESS_DENIED', `${what}; an administrator finds why in the audit log`, { detail });
}
