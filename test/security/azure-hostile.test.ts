import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { handleChallenge, handleJoin } from '../../src/auth/join.js';
import { JoinRefusal } from '../../src/join/types.js';
import { testContext } from '../helpers/auth-context.js';
import {
  azureJoinContext,
  documentJson,
  foreignKey,
  joinPayload,
  makeChain,
  armVmId,
  identityId,
  startAzure,
  SUBSCRIPTION,
  tokenClaims,
  VM_ID,
  vmResourceId,
  type Chain,
  type PayloadOptions,
  type TestAzure,
} from '../helpers/azure.js';
import { tempDir } from '../helpers/procs.js';
import { FileAuditLog } from '../../src/auth/audit.js';

/** What a caller is told until the attested document has verified: what an unknown token gets. */
const GENERIC = /the token is unknown, expired, already used or not valid for this request/;
const OTHER_SUBSCRIPTION = '9e7d2c1a-0000-4000-8000-00000000beef';

describe('azure join: the hostile corpus (each refused, audited with its reason, nothing written)', () => {
  const tmp = tempDir('azure-hostile');
  let t: Awaited<ReturnType<typeof testContext>>;
  let az: TestAzure;
  let rogue: Chain;
  let pub: string;
  const TOKEN = 'azure-vms';
  const challenge = async () =>
    (await handleChallenge(t.ctx, { token: TOKEN, join_method: 'azure', payload: {} }, '127.0.0.1')) as unknown as {
      challenge_id: string;
      nonce: string;
    };
  const joinWith = (payload: unknown) =>
    handleJoin(t.ctx, { token: TOKEN, join_method: 'azure', public_key: pub, payload }, '127.0.0.1');
  const instances = async () => (await t.ctx.backend.range('/bot_instances/')).length;
  const lastReason = async () => (await t.ctx.audit.recent(1, 'bot.join'))[0]?.reason as string;

  /** Joins with the payload `o` makes; expects the refusal `reason` (audit) and `publicMessage` (caller). */
  async function refused(
    o: PayloadOptions | ((ch: { challenge_id: string; nonce: string }) => Promise<unknown>),
    reason: RegExp,
    publicMessage = GENERIC,
  ) {
    const before = await instances();
    const ch = await challenge();
    const payload = typeof o === 'function' ? await o(ch) : await joinPayload(az, ch, o);
    await assert.rejects(joinWith(payload), (e) => e instanceof JoinRefusal && publicMessage.test(e.message));
    assert.match(await lastReason(), reason);
    assert.equal(await instances(), before, 'a refused join writes no instance');
  }

  before(async () => {
    az = await startAzure(tmp.path);
    rogue = await makeChain({ rootName: 'Rogue Root' });
    ({ t, pub } = await azureJoinContext(az));
    // every refusal on its own line: repeated identical refusals (this corpus makes several) would
    // otherwise be counted into the first one's line, and lastReason() would read an older event
    t.ctx.audit = new FileAuditLog(t.auditPath, t.clock.now, { refusalWindowMs: 0 });
    await t.admin.create(
      {
        kind: 'token',
        metadata: { name: TOKEN },
        spec: {
          join_method: 'azure',
          bot_name: 'vm',
          azure: { allow: [{ subscription: SUBSCRIPTION, resource_groups: ['prod-rg'] }] },
        },
      },
      false,
      'admin',
    );
  });
  after(async () => {
    await az?.close();
    tmp.cleanup();
  });

  it('the untouched payload joins (the corpus below changes one thing each)', async () => {
    await joinWith(await joinPayload(az, await challenge()));
  });

  it('nonce mismatch: a document signed for another nonce (a copied or replayed document)', async () => {
    await refused({ fields: { nonce: 'f'.repeat(32) } }, /nonce is not the challenge/);
    // a document from an earlier join, sent with a new challenge
    const old = await joinPayload(az, await challenge());
    await refused(async (ch) => ({ ...old, challenge_id: ch.challenge_id }), /nonce is not the challenge/);
  });

  it('document without a nonce', async () => {
    const { nonce: _n, ...noNonce } = JSON.parse(documentJson({})) as Record<string, unknown>;
    await refused({ content: JSON.stringify(noNonce) }, /has no nonce/);
  });

  it('wrong signer name', async () => {
    const wrong = await makeChain({ name: 'metadata.evil.example', under: az.chain });
    await refused({ signer: wrong.signer }, /signer "metadata.evil.example" is not an allowed name/);
  });

  it('chain to a root that is not pinned (a signer named metadata.azure.com all the same)', async () => {
    await refused(
      { signer: rogue.signer, intermediates: [rogue.issuing.der.toString('base64')] },
      /no pinned root or intermediate issued/,
    );
    await refused(
      {
        signer: rogue.signer,
        intermediates: [rogue.issuing.der.toString('base64'), rogue.root.der.toString('base64')],
      },
      /no pinned root/,
    );
  });

  it('a signature by another key, and tampered content', async () => {
    await refused({ sign: { key: await foreignKey() } }, /signature does not verify/);
    await refused(async (ch) => {
      const p = (await joinPayload(az, ch)) as { attested_data: { signature: string } };
      const der = Buffer.from(p.attested_data.signature, 'base64');
      const at = der.indexOf(Buffer.from(SUBSCRIPTION));
      der[at] = der[at] === 0x30 ? 0x31 : 0x30;
      return { ...p, attested_data: { encoding: 'pkcs7', signature: der.toString('base64') } };
    }, /signature does not verify/);
  });

  it('the identity beside the signed content is ignored: the signed subscription is the one checked', async () => {
    await refused(
      async (ch) => {
        const p = (await joinPayload(az, ch, { fields: { subscriptionId: OTHER_SUBSCRIPTION } })) as Record<
          string,
          any
        >;
        return { ...p, attested_data: { ...p.attested_data, subscriptionId: SUBSCRIPTION } };
      },
      /access token subscription .* is not the attested document's 9e7d2c1a/,
      /another subscription/,
    );
  });

  it("token for another subscription than the document's (a token taken from a VM elsewhere)", async () => {
    await refused(
      { claims: tokenClaims({ sub: OTHER_SUBSCRIPTION }) },
      /is not the attested document's/,
      /another subscription/,
    );
  });

  it('expired token, wrong audience, token by a key the tenant does not publish, no token', async () => {
    const s = Math.floor(Date.now() / 1000);
    await refused({ claims: { ...tokenClaims(), iat: s - 7200, exp: s - 3600 } }, /ERR_JWT_EXPIRED/, /has expired/);
    await refused(
      { claims: { ...tokenClaims(), aud: 'https://graph.microsoft.com' } },
      /ERR_JWT_CLAIM_VALIDATION_FAILED/,
      /aud claim/,
    );
    const forged = await az.sts.sign(tokenClaims(), { key: await az.sts.foreignKey(), kid: az.sts.current().kid });
    await refused({ accessToken: forged }, /signature verification failed|ERR_JWS/);
    await refused({ accessToken: undefined }, /no access_token/);
  });

  it('a resource group the rules do not name', async () => {
    az.vmIn('staging');
    await refused(
      { claims: tokenClaims({ rg: 'staging' }) },
      /no allow rule matches/,
      /matches none of the token's allow rules/,
    );
  });

  it('an expired challenge', async () => {
    const ch = await challenge();
    const payload = await joinPayload(az, ch);
    t.clock.advance(61_000);
    try {
      await assert.rejects(joinWith(payload), (e) => e instanceof JoinRefusal && GENERIC.test(e.message));
      assert.match(await lastReason(), /challenge expired/);
    } finally {
      t.clock.advance(-61_000);
    }
  });

  it("a refused document costs no fetch of the tenant's keys (only a verified VM reaches the token check)", async () => {
    const fetches = az.sts.jwksFetches();
    for (let i = 0; i < 3; i++)
      await refused(
        {
          fields: { nonce: 'e'.repeat(32) },
          claims: { ...tokenClaims(), tid: '99999999-9999-4999-8999-999999999999' },
        },
        /nonce/,
      );
    assert.equal(az.sts.jwksFetches(), fetches);
  });

  // M1 of the review: the token's VM is bound to the document's VM through Azure Resource Manager
  const BOUND = /the join was refused: the access token's virtual machine is not the one that signed/;
  const OTHER_VM_ID = '5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b';

  it("another VM's token, same subscription: its resource group is not lent to the document's VM", async () => {
    // the attacker's VM (the document's, VM_ID) sits in attacker-rg; web-2 in Prod-RG is another VM
    // whose managed identity token the attacker read: before the binding, the rule on prod-rg passed
    az.arm.addVm({ id: armVmId(SUBSCRIPTION, 'attacker-rg', 'evil'), vmId: VM_ID });
    az.arm.addVm({ id: armVmId(SUBSCRIPTION, 'Prod-RG', 'web-2'), vmId: OTHER_VM_ID, userAssigned: [identityId()] });
    const stolen = { ...tokenClaims(), xms_mirid: vmResourceId(SUBSCRIPTION, 'Prod-RG', 'web-2') };
    await refused({ claims: stolen }, /is vmId 5f0c1a2b-.* not the attested document's 02aab8a4/, BOUND);
    // the same with a user-assigned identity's token used on web-2 (xms_az_rid names web-2)
    const user = { ...tokenClaims({ userAssigned: true }), xms_az_rid: vmResourceId(SUBSCRIPTION, 'Prod-RG', 'web-2') };
    await refused({ claims: user }, /is vmId 5f0c1a2b-/, BOUND);
    // ARM was asked with the caller's token, and only for the token's VM
    const asked = az.arm.requests.slice(-2);
    assert.deepEqual(
      asked.map((r) => r.path),
      Array(2).fill(
        `/subscriptions/${SUBSCRIPTION}/resourceGroups/Prod-RG/providers/Microsoft.Compute/virtualMachines/web-2`,
      ),
    );
    assert.ok(asked.every((r) => r.token && r.status === 200));
  });

  it('a user-assigned identity the VM does not hold (per ARM) is refused', async () => {
    az.arm.addVm({ id: armVmId(SUBSCRIPTION, 'Prod-RG', 'bare'), vmId: VM_ID, readers: [identityId()] });
    const claims = {
      ...tokenClaims({ userAssigned: true }),
      xms_az_rid: vmResourceId(SUBSCRIPTION, 'Prod-RG', 'bare'),
    };
    await refused(
      { claims },
      /user-assigned identity .* is not one VM .* holds/,
      /identity is not assigned to the virtual machine/,
    );
  });

  it('ARM cannot confirm the VM: unknown (404), no read access (403), down, 500, garbage, another VM', async () => {
    const UNCONFIRMED = /Azure Resource Manager did not confirm the access token's virtual machine/;
    await refused(
      { claims: tokenClaims({ rg: 'nowhere' }) },
      /has no VM .*nowhere.* \(HTTP 404 ResourceNotFound\)/,
      UNCONFIRMED,
    );
    az.arm.addVm({ id: armVmId(SUBSCRIPTION, 'locked', 'web-1'), vmId: VM_ID, readers: [] });
    await refused(
      { claims: tokenClaims({ rg: 'locked' }) },
      /refused to show VM .* \(HTTP 403 AuthorizationFailed\): the identity needs Microsoft.Compute\/virtualMachines\/read/,
      /needs Microsoft.Compute\/virtualMachines\/read on the VM/,
    );
    for (const [mode, reason] of [
      ['500', /answered HTTP 500 \(InternalServerError\)/],
      ['garbage', /answered 200 with something that is not JSON/],
      ['other-vm', /answered with another resource than/],
      ['huge', /could not be asked .*longer than 262144 bytes/],
    ] as const) {
      az.arm.mode = mode;
      try {
        await refused({}, reason, UNCONFIRMED);
      } finally {
        az.arm.mode = 'ok';
      }
    }
  });
});
