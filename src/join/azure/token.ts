import { decodeJwt } from 'jose';
import type { JwksCache } from '../jwt/jwks.js';
import { canonicalToken, tokenKid, verifyPlatformJwt } from '../jwt/verify.js';
import { JoinRefusal } from '../types.js';
import { parseResourceId, sameResource, type ResourceId } from './resource.js';
import { AZURE_TOKEN_RESOURCE } from './wire.js';

/** Where a managed identity's access token puts the VM: what the VM lookup and the `allow` rules use. */
export interface AzureIdentity {
  tenant: string;
  /** The token VM's subscription (lowercase). */
  subscription: string;
  /** The token VM's resource group, as the token writes it. */
  resource_group: string;
  /** The VM's Azure resource id, as the token writes it. */
  resource_id: string;
  /** The VM the token was issued on. */
  vm: ResourceId;
  /** The identity: the VM itself (system-assigned) or a user-assigned identity. */
  identity: ResourceId;
}

/** Managed identity tokens live 24 hours; some margin above that. */
const MAX_LIFETIME_S = 25 * 3600;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The identity and the VM a token's claims name, or why they name none. `xms_mirid` is the
 * identity's resource: the VM itself for its system-assigned identity, else a user-assigned
 * identity, and then `xms_az_rid` is the VM it was used from (Azure omits it for a system-assigned
 * one; if present there, it must be the same VM). Each claim must be exactly one of the two shapes
 * parseResourceId takes.
 */
export function tokenResources(claims: Record<string, unknown>): { vm: ResourceId; identity: ResourceId } | string {
  const identity = parseResourceId(claims.xms_mirid);
  if (!identity)
    return `xms_mirid ${JSON.stringify(claims.xms_mirid ?? null)} is not a VM or user-assigned identity resource id`;
  const rid = claims.xms_az_rid;
  if (rid === undefined || rid === '') {
    if (identity.kind === 'vm') return { vm: identity, identity };
    return 'a user-assigned identity token without xms_az_rid names no VM';
  }
  const vm = parseResourceId(rid);
  if (vm?.kind !== 'vm') return `xms_az_rid ${JSON.stringify(rid)} is not a VM resource id`;
  if (identity.kind === 'vm' && !sameResource(identity.id, vm.id))
    return `xms_az_rid ${JSON.stringify(rid)} is not the system-assigned identity's VM (xms_mirid)`;
  return { vm, identity };
}

/**
 * Verifies the managed identity's access token: signed by the keys of its tenant's issuer
 * (`https://sts.windows.net/<tid>/`, found by OIDC discovery; mwi.yaml `oidc.endpoint_overrides`
 * can point it elsewhere), that issuer exactly, audience AZURE_TOKEN_RESOURCE, unexpired, and
 * naming a VM. The token is not marked used: IMDS hands out the same token until it nears expiry,
 * and the attested document's nonce is what makes each join fresh.
 */
export async function verifyAccessToken(token: unknown, jwks: JwksCache, now: number): Promise<AzureIdentity> {
  if (typeof token !== 'string' || token.length > 16_384) throw new JoinRefusal('no access_token in the payload');
  const jws = canonicalToken(token);
  let tid: unknown;
  try {
    // read before verifying only to know which issuer's keys verify it; the issuer is checked after
    tid = decodeJwt(token).tid;
  } catch {
    throw new JoinRefusal('access token is not a JWT');
  }
  if (typeof tid !== 'string' || !GUID.test(tid)) throw new JoinRefusal('access token has no tenant id (tid)');
  const issuer = `https://sts.windows.net/${tid}/`;
  let keys: Awaited<ReturnType<JwksCache['keysFor']>>;
  try {
    keys = await jwks.keysFor(issuer, tokenKid(token));
  } catch (err) {
    if (err instanceof JoinRefusal) throw err;
    throw new JoinRefusal(`keys of ${issuer} unavailable: ${err instanceof Error ? err.message : String(err)}`);
  }
  const { payload } = await verifyPlatformJwt(
    token,
    { issuer, audience: AZURE_TOKEN_RESOURCE, keys, now, maxLifetimeS: MAX_LIFETIME_S, required: ['tid'] },
    jws,
  );
  const named = tokenResources(payload);
  if (typeof named === 'string')
    throw new JoinRefusal(
      `access token names no VM: ${named}`,
      'the join was refused: the access token names no virtual machine (xms_mirid, xms_az_rid)',
    );
  const { vm, identity } = named;
  return {
    tenant: tid.toLowerCase(),
    subscription: vm.subscription,
    resource_group: vm.resourceGroup,
    resource_id: vm.id,
    vm,
    identity,
  };
}
