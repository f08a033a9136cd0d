import { z } from 'zod';
import type { ClientJoinMethod } from '../client-types.js';
import { Imds, IMDS_DEFAULT, IMDS_ENV, issuingChain } from './imds.js';
import { AZURE_TOKEN_RESOURCE, type AzureChallenge, type AzureJoinPayload } from './wire.js';

/**
 * Client half of `azure`: the managed identity's access token and, for the challenge the Auth
 * Service sends, the attested document IMDS signs with it as nonce, with the certificates that
 * link the document's signer to its root. `onboarding.azure.client_id` (Teleport's name; a join
 * URI's parameter sets it too) picks a user-assigned identity.
 */
export const azureClient: ClientJoinMethod = {
  name: 'azure',
  options: {
    schema: z.object({ client_id: z.string().min(1, 'expected a client id').optional() }).strict(),
    uriParameter: { key: 'client_id' },
  },
  async payload(ctx): Promise<AzureJoinPayload> {
    const override = process.env[IMDS_ENV] || undefined;
    const imds = new Imds(override ?? IMDS_DEFAULT);
    const clientId = typeof ctx.options.client_id === 'string' ? ctx.options.client_id : undefined;
    // the token first: the challenge's minute then only covers the document and its chain
    const accessToken = await imds.accessToken(AZURE_TOKEN_RESOURCE, clientId);
    const ch = (await ctx.challenge({})) as unknown as AzureChallenge;
    const attested = await imds.attestedDocument(ch.nonce);
    const intermediates = await issuingChain(attested, override, (m, f) => ctx.log.warn(m, f));
    return {
      challenge_id: ch.challenge_id,
      attested_data: attested,
      intermediates: intermediates.map((c) => c.toString('base64')),
      access_token: accessToken,
    };
  },
};
