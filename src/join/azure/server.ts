import { randomBytes } from 'node:crypto';
import { parseWith } from '../../util/parse.js';
import { MwiError } from '../../errors.js';
import { checkAllow } from '../jwt/allow.js';
import { explainRecorded } from '../jwt/explain.js';
import { oidcSection } from '../jwt/jwks.js';
import { prepareRulesToken } from '../jwt/method.js';
import type { AllowPolicy } from '../jwt/rules.js';
import { methodOptions, storedRules } from '../placement.js';
import { JoinRefusal, type JoinVerdict, type ServerJoinContext, type ServerJoinMethod } from '../types.js';
import { azureSection } from './config.js';
import { verifyAttestedDocument } from './document.js';
import { verifyAccessToken } from './token.js';
import { AZURE_ALLOW, AZURE_REQUIRED, azureSpec, type AzureJoinPayload } from './wire.js';

const POLICY: AllowPolicy = { fields: AZURE_ALLOW, requireOneOf: AZURE_REQUIRED };

/**
 * The nonce IMDS signs into the attested document: 16 random bytes as 32 hex characters (IMDS
 * takes a nonce of up to 32 alphanumeric characters). It travels sealed in the challenge id, so
 * the join gets back the very nonce this server issued, and the challenge is spent by the write
 * that records the join: one document joins once.
 */
function newNonce(): string {
  return randomBytes(16).toString('hex');
}

/**
 * Azure VMs: the attested document IMDS signs with this join's challenge as nonce proves the VM
 * (and its subscription), the managed identity's access token its resource group and tenant.
 * Identities are not renewed: tbot joins again for each (as in Teleport).
 */
/**
 * The resource group comes from the access token's VM, which mwi does not yet bind to the attested
 * document's VM (Teleport looks the VM up in Azure Resource Manager and compares its vmId): said
 * whenever a token relies on it.
 */
export const RESOURCE_GROUP_NOTE =
  'resource_groups is checked against the managed identity token, whose VM mwi does not yet match to the ' +
  "attested document's VM (Teleport looks it up in Azure Resource Manager): whoever runs a VM in the same " +
  "subscription and holds another VM's managed identity token passes a resource_groups rule. Where resource " +
  'groups separate trust, use separate subscriptions (docs/join-methods/azure.md)';

export const azureServer: ServerJoinMethod = {
  name: 'azure',
  sections: [oidcSection, azureSection],
  prepareToken: (input) => {
    const prepared = prepareRulesToken('azure', input, (spec) => {
      parseWith(azureSpec, methodOptions(spec, 'azure'), { code: 'BAD_REQUEST', path: ['spec', 'azure'] });
      return POLICY;
    });
    const rules = (prepared.spec.azure as { allow?: { resource_groups?: unknown[] }[] } | undefined)?.allow ?? [];
    if (rules.some((r) => (r.resource_groups?.length ?? 0) > 0)) prepared.notes.push(RESOURCE_GROUP_NOTE);
    return prepared;
  },
  create(_deps, section) {
    const jwks = section(oidcSection);
    const trust = section(azureSection);
    return {
      async challenge() {
        const nonce = newNonce();
        return { send: { nonce }, store: { nonce } };
      },
      async verify(ctx: ServerJoinContext): Promise<JoinVerdict> {
        const nonce = ctx.challenge?.nonce;
        if (typeof nonce !== 'string') throw new JoinRefusal('no valid challenge for this join');
        const p = (ctx.request.payload ?? {}) as Partial<AzureJoinPayload>;
        // the document first: it needs no network, and only a VM that holds one reaches the
        // token check, which may fetch its tenant's keys
        const doc = await verifyAttestedDocument(p.attested_data, p.intermediates, nonce, trust, ctx.now);
        const id = await verifyAccessToken(p.access_token, jwks, ctx.now);
        const claims = { tenant: id.tenant, subscription: id.subscription, resource_group: id.resource_group };
        if (id.subscription !== doc.subscriptionId)
          throw new JoinRefusal(
            `access token subscription ${id.subscription} is not the attested document's ${doc.subscriptionId}`,
            'the join was refused: the access token is for another subscription than the attested document',
          );
        let rule: Record<string, unknown>;
        try {
          rule = checkAllow(storedRules(ctx.token.spec, 'azure'), claims, POLICY);
        } catch (err) {
          // verified claims, kept with the refusal in the audit log
          if (err instanceof JoinRefusal) err.claims = claims;
          throw err;
        }
        return { attributes: { ...claims, vm_id: doc.vmId, resource_id: id.resource_id, matched_rule: rule } };
      },
      // tctl tokens test --from-audit: the rules again, on the claims a join refused by them recorded
      async explain(token, input) {
        if (!('recordedClaims' in input))
          throw new MwiError(
            'BAD_REQUEST',
            'an azure join is checked on an attested document IMDS signs for one join (its nonce is that ' +
              "join's challenge), which cannot be captured and tested later: test a refused join's claims with " +
              '--from-audit',
            { field: '--id-token' },
          );
        return explainRecorded(storedRules(token.spec, 'azure'), input.recordedClaims, input.recordedAt, POLICY);
      },
    };
  },
};
