import { MwiError } from '../../errors.js';
import type { ClientJoinMethod } from '../client-types.js';

/** Requests the pipeline's OIDC token (SYSTEM_OIDCREQUESTURI with SYSTEM_ACCESSTOKEN). */
export const azureDevopsClient: ClientJoinMethod = {
  name: 'azure_devops',
  async payload() {
    const url = process.env.SYSTEM_OIDCREQUESTURI;
    const bearer = process.env.SYSTEM_ACCESSTOKEN;
    if (!url || !bearer) {
      throw new MwiError(
        'BAD_CONFIG',
        'SYSTEM_OIDCREQUESTURI and SYSTEM_ACCESSTOKEN are not set: map System.AccessToken into the step env',
        { field: 'onboarding.join_method azure_devops' },
      );
    }
    const u = new URL(url);
    u.searchParams.set('api-version', '7.1');
    const res = await fetch(u, {
      method: 'POST',
      headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
      body: '{}',
      signal: AbortSignal.timeout(15_000),
    });
    if (!res.ok) throw new MwiError('UNREACHABLE', `the Azure DevOps OIDC endpoint answered HTTP ${res.status}`);
    const body = (await res.json()) as { oidcToken?: unknown };
    if (typeof body.oidcToken !== 'string')
      throw new MwiError('UNREACHABLE', 'the Azure DevOps OIDC endpoint sent no token');
    return { id_token: body.oidcToken };
  },
};
