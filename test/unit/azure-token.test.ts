import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { JWTPayload } from 'jose';
import { parseResourceId } from '../../src/join/azure/resource.js';
import { tokenResources, verifyAccessToken } from '../../src/join/azure/token.js';
import { JwksCache } from '../../src/join/jwt/jwks.js';
import { JoinRefusal } from '../../src/join/types.js';
import { identityId, RESOURCE_GROUP, STS, SUBSCRIPTION, TENANT, tokenClaims, vmResourceId } from '../helpers/azure.js';
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
    const id = await verify(await sign(tokenClaims()));
    assert.deepEqual(
      {
        tenant: id.tenant,
        subscription: id.subscription,
        resource_group: id.resource_group,
        resource_id: id.resource_id,
      },
      { tenant: TENANT, subscription: SUBSCRIPTION, resource_group: RESOURCE_GROUP, resource_id: vmResourceId() },
    );
    assert.equal(id.identity, id.vm);
  });

  it("a user-assigned identity: the VM is xms_az_rid, not the identity's own resource (xms_mirid)", async () => {
    const id = await verify(await sign(tokenClaims({ userAssigned: true })));
    assert.equal(id.resource_group, RESOURCE_GROUP);
    assert.equal(id.resource_id, vmResourceId());
  });

  it('a token naming no VM is refused: a user-assigned identity without xms_az_rid, or neither claim', async () => {
    const { xms_az_rid: _vm, ...identityOnly } = tokenClaims({ userAssigned: true });
    await refused(verify(await sign(identityOnly)), /names no VM/, /names no virtual machine/);
    // exactly the two shapes: a scale set instance's id is refused (it was taken before)
    const vmss =
      `/subscriptions/${SUBSCRIPTION}/resourceGroups/rg-1/providers/` +
      'Microsoft.Compute/virtualMachineScaleSets/ss/virtualMachines/3';
    await refused(verify(await sign({ ...tokenClaims(), xms_mirid: vmss })), /names no VM/);
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

  it('parseResourceId: exactly a VM or a user-assigned identity, in any case; nothing more or less', () => {
    const upper = vmResourceId(SUBSCRIPTION.toUpperCase(), 'RG').toUpperCase();
    assert.deepEqual(parseResourceId(upper), {
      kind: 'vm',
      subscription: SUBSCRIPTION,
      resourceGroup: 'RG',
      name: 'WEB-1',
      id: upper,
    });
    assert.equal(parseResourceId(identityId().toLowerCase())?.kind, 'identity');
    assert.equal(parseResourceId(identityId())?.name, 'deployer');
    const vm = vmResourceId();
    for (const rid of [
      // other resource types, scale sets and their instances included
      `/subscriptions/${SUBSCRIPTION}/resourcegroups/rg/providers/Microsoft.Web/sites/app`,
      `/subscriptions/${SUBSCRIPTION}/resourcegroups/rg/providers/Microsoft.Compute/disks/d`,
      `/subscriptions/${SUBSCRIPTION}/resourceGroups/rg-1/providers/Microsoft.Compute/virtualMachineScaleSets/ss`,
      `/subscriptions/${SUBSCRIPTION}/resourceGroups/rg-1/providers/Microsoft.Compute/virtualMachineScaleSets/ss` +
        '/virtualMachines/3',
      `/subscriptions/${SUBSCRIPTION}/resourcegroups/rg`,
      // extra segments after, between or before
      `${vm}/extensions/x`,
      `${vm}/`,
      `${vm}/../../x`,
      `${identityId()}/federatedIdentityCredentials/f`,
      vm.replace('/providers/', '/providers/Microsoft.Resources/deployments/d/providers/'),
      `/x${vm}`,
      vm.slice(1),
      // a subscription that is not a GUID, names a URL would read differently, dot segments
      vm.replace(SUBSCRIPTION, 'not-a-guid'),
      vmResourceId(SUBSCRIPTION, 'rg?x=1'),
      vmResourceId(SUBSCRIPTION, 'rg#x'),
      vmResourceId(SUBSCRIPTION, 'rg%2fx'),
      vmResourceId(SUBSCRIPTION, '..'),
      vmResourceId(SUBSCRIPTION, 'rg', '.'),
      vmResourceId(SUBSCRIPTION, 'r g'),
      `${vm}\n`,
    ])
      assert.equal(parseResourceId(rid), undefined, rid);
  });

  it('tokenResources: the identity (xms_mirid) and the VM (xms_az_rid, or the system-assigned VM itself)', () => {
    const vm = vmResourceId();
    const system = tokenResources({ xms_mirid: vm });
    assert.ok(typeof system !== 'string');
    assert.equal(system.vm, system.identity);
    const user = tokenResources({ xms_mirid: identityId(), xms_az_rid: vm });
    assert.ok(typeof user !== 'string');
    assert.deepEqual([user.identity.kind, user.vm.kind, user.vm.id], ['identity', 'vm', vm]);
    for (const [claims, reason] of [
      [{ xms_mirid: identityId() }, /without xms_az_rid names no VM/],
      [{ xms_mirid: identityId(), xms_az_rid: identityId() }, /xms_az_rid .* is not a VM/],
      [{ xms_mirid: vm, xms_az_rid: vmResourceId(SUBSCRIPTION, 'other') }, /not the system-assigned identity's VM/],
      [{ xms_mirid: `${vm}/extensions/x` }, /xms_mirid .* is not a VM or user-assigned identity/],
      [{ xms_az_rid: vm }, /xms_mirid null/],
    ] as const)
      assert.match(tokenResources(claims) as string, reason, JSON.stringify(claims));
  });
});
