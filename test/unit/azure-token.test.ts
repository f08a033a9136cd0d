import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { JWTPayload } from 'jose';
import { verifyAccessToken, vmResource } from '../../src/join/azure/token.js';
import { JwksCache } from '../../src/join/jwt/jwks.js';
import { JoinRefusal } from '../../src/join/types.js';
import { RESOURCE_GROUP, STS, SUBSCRIPTION, TENANT, tokenClaims, vmResourceId } from '../helpers/azure.js';
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';

const OTHER_TENANT = '11111111-2222-3333-4444-555555555555';

describe('azure: the managed identity access token', () => {
  let sts: TestIssuer;
  let other: TestIssuer;
  let jwks: JwksCache;
  const sign = (claims: JWTPayload, issuer = sts) => issuer.sign({ ...claims });
  const verify = (token: unknown) => verifyAccessToken(token, jwks, Date.now());
  const refused = (p: Promise<unknown>, reason: RegExp, publicMessage?: RegExp) =>
    assert.rejects(
      p,
      (e) =>
        e instanceof JoinRefusal && reason.test(e.detail ?? '') && (!publicMessage || publicMessage.test(e.message)),
    );

  before(async () => {
    sts = await startIssuer({ issuer: STS });
    other = await startIssuer({ issuer: `https://sts.windows.net/${OTHER_TENANT}/` });
    jwks = new JwksCache(
      { fetchJson: async (url) => (await fetch(url)).json() },
      { endpointOverrides: { [STS]: sts.url, [other.issuer]: other.url } },
    );
  });
  after(async () => {
    await sts?.close();
    await other?.close();
  });

  it('a system-assigned identity: the VM is xms_mirid; subscription, resource group and tenant come from it', async () => {
    assert.deepEqual(await verify(await sign(tokenClaims())), {
      tenant: TENANT,
      subscription: SUBSCRIPTION,
      resource_group: RESOURCE_GROUP,
      resource_id: vmResourceId(),
    });
  });

  it("a user-assigned identity: the VM is xms_az_rid, not the identity's own resource (xms_mirid)", async () => {
    const id = await verify(await sign(tokenClaims({ userAssigned: true })));
    assert.equal(id.resource_group, RESOURCE_GROUP);
    assert.equal(id.resource_id, vmResourceId());
  });

  it('a token naming no VM is refused: a user-assigned identity without xms_az_rid, or neither claim', async () => {
    const { xms_az_rid: _vm, ...identityOnly } = tokenClaims({ userAssigned: true });
    await refused(verify(await sign(identityOnly)), /names no VM/, /names no virtual machine/);
    const { xms_mirid: _m, ...none } = tokenClaims();
    await refused(verify(await sign(none)), /names no VM/);
  });

  it('refuses the wrong audience, an expired token, and one that lives too long', async () => {
    await refused(verify(await sign({ ...tokenClaims(), aud: 'https://vault.azure.net' })), /aud/, /aud claim/);
    const t = Math.floor(Date.now() / 1000);
    await refused(verify(await sign({ ...tokenClaims(), iat: t - 7200, exp: t - 3600 })), /ERR_JWT_EXPIRED/, /expired/);
    await refused(verify(await sign({ ...tokenClaims(), iat: t, exp: t + 26 * 3600 })), /lifetime/, /lives too long/);
  });

  it("checks the issuer against the token's own tenant: another tenant's issuer, or a key it does not publish", async () => {
    // this tenant's key and tid, another tenant's issuer
    await refused(
      verify(await sign({ ...tokenClaims(), iss: other.issuer })),
      /ERR_JWT_CLAIM_VALIDATION_FAILED/,
      /iss/,
    );
    // the other tenant's key, claiming this tenant: this tenant's keys do not verify it
    await refused(verify(await sign(tokenClaims(), other)), /ERR_JWKS_NO_MATCHING_KEY/);
    // this tenant's key, claiming the other tenant: the other tenant's keys do not verify it
    await refused(verify(await sign({ ...tokenClaims(), tid: OTHER_TENANT })), /ERR_JWKS_NO_MATCHING_KEY/);
    // this tenant's issuer, signed by a key its JWKS does not have
    const foreign = await sts.foreignKey();
    await refused(verify(await sts.sign(tokenClaims(), { key: foreign, kid: sts.current().kid })), /jwt/);
    await refused(verify(await sign({ ...tokenClaims(), tid: 'not-a-guid' })), /no tenant id/);
  });

  it('refuses what is not a token', async () => {
    await refused(verify(undefined), /no access_token/);
    await refused(verify('a'.repeat(20_000)), /no access_token/);
    await refused(verify('not.a.jwt'), /id_token|not a JWT|JWS/);
  });

  it('vmResource: VMs and scale sets in any case; anything else is no VM', () => {
    const vmss =
      `/subscriptions/${SUBSCRIPTION}/resourceGroups/rg-1/providers/` +
      'Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/3';
    assert.deepEqual(vmResource({ xms_mirid: vmss }), { subscription: SUBSCRIPTION, resourceGroup: 'rg-1', id: vmss });
    const upper = vmResourceId(SUBSCRIPTION.toUpperCase(), 'RG').replace('resourcegroups', 'RESOURCEGROUPS');
    assert.equal(vmResource({ xms_mirid: upper })?.subscription, SUBSCRIPTION);
    for (const rid of [
      `/subscriptions/${SUBSCRIPTION}/resourcegroups/rg/providers/Microsoft.Web/sites/app`,
      `/subscriptions/${SUBSCRIPTION}/resourcegroups/rg/providers/Microsoft.Compute/disks/d`,
      `/subscriptions/${SUBSCRIPTION}/resourcegroups/rg`,
      `${vmResourceId()}/../../x`,
      'subscriptions/x/resourcegroups/y/providers/Microsoft.Compute/virtualMachines/z',
    ])
      assert.equal(vmResource({ xms_mirid: rid }), undefined, rid);
    // xms_az_rid wins over xms_mirid
    assert.equal(
      vmResource({ xms_mirid: vmResourceId(), xms_az_rid: vmResourceId(SUBSCRIPTION, 'other') })?.resourceGroup,
      'other',
    );
  });
});
