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
import { bindVm } from './bind.js';
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
 * (and its subscription), the managed identity's access token its tenant, and Azure Resource
 * Manager, asked with that token, binds the two: the token's VM must be the document's VM, and its
 * resource group is the one the rules see. Identities are not renewed: tbot joins again for each
 * (as in Teleport).
 */
export const azureServer: ServerJoinMethod = {
  name: 'azure',
  sections: [oidcSection, azureSection],
  prepareToken: (input) => {
    const prepared = prepareRulesToken('azure', input, (spec) => {
      parseWith(azureSpec, methodOptions(spec, 'azure'), { code: 'BAD_REQUEST', path: ['spec', 'azure'] });
      return POLICY;
    });
    return prepared;
  },
  create(_deps, section) {
    const jwks = section(oidcSection);
    const settings = section(azureSection);
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
        const doc = await verifyAttestedDocument(p.attested_data, p.intermediates, nonce, settings, ctx.now);
        const id = await verifyAccessToken(p.access_token, jwks, ctx.now);
        if (id.subscription !== doc.subscriptionId)
          throw new JoinRefusal(
            `access token subscription ${id.subscription} is not the attested document's ${doc.subscriptionId}`,
            'the join was refused: the access token is for another subscription than the attested document',
          );
        const vm = await bindVm(settings.arm, id, p.access_token as string, doc.vmId);
        // the rules see the VM as ARM describes it (its resource group in ARM's spelling)
        const claims = { tenant: id.tenant, subscription: vm.vm.subscription, resource_group: vm.vm.resourceGroup };
        let rule: Record<string, unknown>;
        try {
          rule = checkAllow(storedRules(ctx.token.spec, 'azure'), claims, POLICY);
        } catch (err) {
          // verified claims, kept with the refusal in the audit log
          if (err instanceof JoinRefusal) err.claims = claims;
          throw err;
        }
        return { attributes: { ...claims, vm_id: doc.vmId, resource_id: vm.vm.id, matched_rule: rule } };
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
