import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { handleChallenge, handleJoin } from '../../src/auth/join.js';
import { isMwiError } from '../../src/errors.js';
import { JoinRefusal } from '../../src/join/types.js';
import { tokenKey } from '../../src/auth/tokens.js';
import { testContext } from '../helpers/auth-context.js';
import {
  azureJoinContext,
  joinPayload,
  startAzure,
  SUBSCRIPTION,
  TENANT,
  tokenClaims,
  VM_ID,
  armVmId,
  type PayloadOptions,
  type TestAzure,
} from '../helpers/azure.js';
import { tempDir } from '../helpers/procs.js';

type T = Awaited<ReturnType<typeof testContext>>;

describe('azure join through the join pipeline (challenge as nonce, rules, Teleport-shaped tokens)', () => {
  const tmp = tempDir('azure-join');
  let t: T;
  let az: TestAzure;
  let pub: string;
  let n = 0;
  const token = async (allow: unknown[], name = `az-${n++}`) => {
    await t.admin.create(
      { kind: 'token', metadata: { name }, spec: { join_method: 'azure', bot_name: 'vm', azure: { allow } } },
      false,
      'admin',
    );
    return name;
  };
  const challenge = async (name: string) =>
    (await handleChallenge(t.ctx, { token: name, join_method: 'azure', payload: {} }, '127.0.0.1')) as unknown as {
      challenge_id: string;
      nonce: string;
    };
  const joinWith = (name: string, payload: Record<string, unknown>) =>
    handleJoin(t.ctx, { token: name, join_method: 'azure', public_key: pub, payload }, '127.0.0.1');
  const join = async (name: string, o: PayloadOptions = {}) =>
    joinWith(name, await joinPayload(az, await challenge(name), o));
  const lastJoin = async () => (await t.ctx.audit.recent(1, 'bot.join'))[0]!;

  before(async () => {
    az = await startAzure(tmp.path);
    ({ t, pub } = await azureJoinContext(az));
  });
  after(async () => {
    await az?.close();
    tmp.cleanup();
  });

  it('the challenge carries a nonce IMDS takes (32 alphanumeric characters), fresh each time', async () => {
    const name = await token([{ subscription: SUBSCRIPTION }]);
    const a = await challenge(name);
    const b = await challenge(name);
    assert.match(a.nonce, /^[0-9a-f]{32}$/);
    assert.notEqual(a.nonce, b.nonce);
    assert.match(a.challenge_id, /^c1\./);
    // an unknown token gets a challenge of the same shape (a decoy): nothing tells it apart
    const decoy = await challenge('no-such-token');
    assert.deepEqual(Object.keys(decoy).sort(), Object.keys(a).sort());
    assert.match(decoy.nonce, /^[0-9a-f]{32}$/);
  });

  it('a VM the rules allow joins; the identity is not renewable; the verified attributes are recorded', async () => {
    const name = await token([{ subscription: SUBSCRIPTION, resource_groups: ['prod-rg'] }]);
    const id = await join(name);
    assert.equal(id.bot_name, 'vm');
    assert.equal(id.renewable, false);
    const e = await lastJoin();
    assert.equal(e.success, true);
    assert.equal(e.tenant, TENANT);
    assert.equal(e.subscription, SUBSCRIPTION);
    assert.equal(e.resource_group, 'Prod-RG');
    assert.equal(e.vm_id, VM_ID);
    // the VM as Azure Resource Manager describes it
    assert.equal(e.resource_id, armVmId());
    // resource groups match whatever their case (Azure's are case-insensitive), as in Teleport
    assert.deepEqual(e.matched_rule, { subscription: SUBSCRIPTION, resource_groups: ['prod-rg'] });
  });

  it('subscription and tenant match without regard to case (GUIDs); a tenant-only rule works', async () => {
    await join(await token([{ subscription: SUBSCRIPTION.toUpperCase() }]));
    await join(await token([{ tenant: TENANT.toUpperCase() }]));
    await join(await token([{ tenant: TENANT, subscription: SUBSCRIPTION, resource_groups: ['x', 'PROD-RG'] }]));
  });

  it('a user-assigned identity (its client id) joins as its VM', async () => {
    const name = await token([{ subscription: SUBSCRIPTION, resource_groups: ['Prod-RG'] }]);
    await join(name, { claims: tokenClaims({ userAssigned: true }) });
    assert.equal((await lastJoin()).resource_group, 'Prod-RG');
  });

  it('a VM the rules do not allow is refused; its verified claims are kept for tokens test --from-audit', async () => {
    const name = await token([
      { subscription: SUBSCRIPTION, resource_groups: ['staging'] },
      { subscription: '00000000-0000-0000-0000-000000000000' },
      { tenant: '00000000-0000-0000-0000-000000000000', subscription: SUBSCRIPTION },
    ]);
    await assert.rejects(
      join(name),
      (e) => e instanceof JoinRefusal && /matches none of the token's allow rules/.test(e.message),
    );
    const e = await lastJoin();
    assert.equal(e.success, false);
    assert.deepEqual(e.claims, { tenant: TENANT, subscription: SUBSCRIPTION, resource_group: 'Prod-RG' });
    // the rules again on those claims, as tctl tokens test --from-audit asks them
    const handler = t.ctx.methods.get('azure')!;
    const stored = JSON.parse((await t.ctx.backend.get(tokenKey(name)))!.value) as { spec: Record<string, unknown> };
    const view = { id: name, botName: 'vm', spec: stored.spec, status: {} };
    const out = await handler.explain!(view, { recordedClaims: e.claims, recordedAt: 'then' }, 'unit', Date.now());
    assert.equal(out.wouldJoin, false);
    assert.deepEqual(
      out.rules.map((r) => r.fields.filter((f) => !f.ok).map((f) => f.field)),
      [['resource_groups'], ['subscription'], ['tenant']],
    );
    await assert.rejects(
      handler.explain!(view, { idToken: 'x' }, 'unit', Date.now()),
      (err) => isMwiError(err, 'BAD_REQUEST') && /--from-audit/.test(err.message),
    );
  });

  it('one attested document joins once: the challenge is spent by the join it answered', async () => {
    const name = await token([{ subscription: SUBSCRIPTION }]);
    const payload = await joinPayload(az, await challenge(name));
    await joinWith(name, payload);
    await assert.rejects(joinWith(name, payload), (e) => e instanceof JoinRefusal && /already used/.test(e.message));
  });

  it('a challenge answers only the token it was issued for', async () => {
    const a = await token([{ subscription: SUBSCRIPTION }]);
    const b = await token([{ subscription: SUBSCRIPTION }]);
    const payload = await joinPayload(az, await challenge(a));
    await assert.rejects(joinWith(b, payload), JoinRefusal);
    assert.match((await lastJoin()).reason as string, /challenge was issued for another token/);
  });

  it("tokens: rules under spec.azure.allow (Teleport's place); spec.allow moved there with a note", async () => {
    const stored = async (name: string) =>
      (JSON.parse((await t.ctx.backend.get(tokenKey(name)))!.value) as { spec: Record<string, any> }).spec;
    const rule = { subscription: SUBSCRIPTION, resource_groups: ['a', 'b'] };
    await token([rule], 'teleport-shape');
    assert.deepEqual((await stored('teleport-shape')).azure, { allow: [rule] });
    const reply = await t.admin.create(
      { kind: 'token', metadata: { name: 'old-shape' }, spec: { join_method: 'azure', bot_name: 'vm', allow: [rule] } },
      false,
      'admin',
    );
    assert.deepEqual(reply.notes, [
      'token "old-shape": spec.allow is deprecated for join method azure: the rules were stored as ' +
        'spec.azure.allow, where Teleport keeps them',
    ]);
    assert.deepEqual((await stored('old-shape')).azure, { allow: [rule] });
  });

  it('tokens: a rule that names no subscription or tenant, an unknown field, or an empty list is refused', async () => {
    const refused = (spec: Record<string, unknown>, field: string, message: RegExp) =>
      assert.rejects(
        t.admin.create(
          { kind: 'token', metadata: { name: `bad-${n++}` }, spec: { join_method: 'azure', bot_name: 'vm', ...spec } },
          false,
          'admin',
        ),
        (e) => isMwiError(e, 'BAD_REQUEST') && e.field === field && message.test(e.message),
      );
    await refused({ azure: { allow: [{ resource_groups: ['prod'] }] } }, 'spec.azure.allow[0]', /subscription, tenant/);
    await refused(
      { azure: { allow: [{ subscription: SUBSCRIPTION, vm_id: 'x' }] } },
      'spec.azure.allow[0].vm_id',
      /unknown field/,
    );
    await refused(
      { azure: { allow: [{ subscription: SUBSCRIPTION, resource_groups: [] }] } },
      'spec.azure.allow[0].resource_groups',
      /non-empty list/,
    );
    await refused({ azure: { allow: [] } }, 'spec.azure.allow', /at least one allow rule/);
    await refused(
      { azure: { allow: [{ subscription: SUBSCRIPTION }], client_id: 'x' } },
      'spec.azure.client_id',
      /unknown key/,
    );
  });
});

describe('azure tokens: a resource_groups rule needs no note (the token VM is bound to the document VM)', () => {
  it('a rule naming resource groups is created without the note it once had', async () => {
    const t = await testContext();
    const spec = (allow: unknown[]) => ({ join_method: 'azure', bot_name: 'vm', azure: { allow } });
    const withGroups = await t.admin.create(
      { kind: 'token', metadata: { name: 'rg' }, spec: spec([{ subscription: SUBSCRIPTION, resource_groups: ['p'] }]) },
      false,
      'admin',
    );
    assert.ok(!withGroups.notes?.some((n) => /resource_groups/.test(n)), JSON.stringify(withGroups.notes));
  });
});
