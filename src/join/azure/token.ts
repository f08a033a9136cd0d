import { decodeJwt } from 'jose';
import type { JwksCache } from '../jwt/jwks.js';
import { canonicalToken, tokenKid, verifyPlatformJwt } from '../jwt/verify.js';
import { JoinRefusal } from '../types.js';
import { AZURE_TOKEN_RESOURCE } from './wire.js';

/** Where a managed identity's access token puts the VM: what `allow` rules are matched against. */
export interface AzureIdentity {
  tenant: string;
  subscription: string;
  resource_group: string;
  /** The VM's (or scale set's) Azure resource id. */
  resource_id: string;
}

/** Managed identity tokens live 24 hours; some margin above that. */
const MAX_LIFETIME_S = 25 * 3600;
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A VM or scale set resource id: its subscription and resource group (segment names in any case). */
const VM_RESOURCE =
  /^\/subscriptions\/([^/]+)\/resourcegroups\/([^/]+)\/providers\/microsoft\.compute\/(?:virtualmachines|virtualmachinescalesets)\/[^/]+(?:\/[^/]+\/[^/]+)*$/i;

/**
 * The VM a token's claims name: `xms_az_rid` (the VM, when the identity is user-assigned), else
 * `xms_mirid` (the VM itself, for a system-assigned identity). A user-assigned identity's own id
 * (`Microsoft.ManagedIdentity/...`) says where the identity lives, not the VM: it is not used.
 */
export function vmResource(
  claims: Record<string, unknown>,
): { subscription: string; resourceGroup: string; id: string } | undefined {
  const rid = typeof claims.xms_az_rid === 'string' && claims.xms_az_rid ? claims.xms_az_rid : claims.xms_mirid;
  if (typeof rid !== 'string') return undefined;
  const m = VM_RESOURCE.exec(rid);
  return m ? { subscription: m[1]!.toLowerCase(), resourceGroup: m[2]!, id: rid } : undefined;
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
  const vm = vmResource(payload);
  if (!vm)
    throw new JoinRefusal(
      `access token names no VM (xms_az_rid ${JSON.stringify(payload.xms_az_rid ?? null)}, ` +
        `xms_mirid ${JSON.stringify(payload.xms_mirid ?? null)})`,
      'the join was refused: the access token names no virtual machine (xms_az_rid or xms_mirid)',
    );
  return {
    tenant: tid.toLowerCase(),
    subscription: vm.subscription,
    resource_group: vm.resourceGroup,
    resource_id: vm.id,
  };
}
