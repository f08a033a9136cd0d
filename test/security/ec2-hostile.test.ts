import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { activeLock } from '../../src/auth/access.js';
import { AdminApi } from '../../src/auth/admin.js';
import type { AuthContext } from '../../src/auth/context.js';
import { handleJoin } from '../../src/auth/join.js';
import { joinRecordKey } from '../../src/auth/join-context.js';
import { joinHandlers } from '../../src/auth/platform.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { ec2Section } from '../../src/join/ec2/server.js';
import { JoinRefusal, type JoinHandler, type ServerJoinContext } from '../../src/join/types.js';
import { dsaIid, ec2Handler, iidJson, signIid, testRegionCa, type TestRegionCa } from '../helpers/aws-iid.js';
import { testContext } from '../helpers/auth-context.js';
import { tempDir, waitFor } from '../helpers/procs.js';

const ACCOUNT = '123456789012';
const GENERIC = /^the join was refused \(the token is unknown, expired, already used or not valid for this request\)/;
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

function ctxFor(payload: unknown): ServerJoinContext {
  return {
    request: { token: 'ec2-tok', join_method: 'ec2', public_key: '', payload },
    token: {
      id: 'ec2-tok',
      botName: 'robot',
      spec: { join_method: 'ec2', allow: [{ aws_account: ACCOUNT }] },
      status: {},
    },
    now: Date.now(),
    readRecord: async () => undefined,
  } as unknown as ServerJoinContext;
}

/** Refused with `reason` in the audit log; the caller sees `message` (default: the generic refusal). */
const refusedFor =
  (reason: RegExp, message = GENERIC) =>
  (e: unknown) => {
    assert.ok(e instanceof JoinRefusal, String(e));
    assert.match(String(e.detail), reason);
    assert.match(e.message, message);
    return true;
  };

describe('ec2: the hostile corpus (each refused, the reason audited)', () => {
  const tmp = tempDir('ec2-hostile');
  let ca: TestRegionCa;
  let other: TestRegionCa;
  let h: JoinHandler;
  before(async () => {
    ca = await testRegionCa();
    other = await testRegionCa('Other');
    h = ec2Handler(tmp.path, { 'us-west-2': ca, 'eu-west-1': other });
  });
  after(() => tmp.cleanup());
  const verify = (document: unknown, extra: Record<string, unknown> = {}) => h.verify(ctxFor({ document, ...extra }));

  it('tampered content, a signature by another key, a certificate of another region, an unknown region', async () => {
    const doc = Buffer.from((await signIid(iidJson({}), ca)).replace(/\n/g, ''), 'base64');
    const at = doc.indexOf(Buffer.from(`"accountId" : "${ACCOUNT}"`)) + 16;
    doc[at] = '9'.charCodeAt(0);
    await assert.rejects(verify(doc.toString('base64')), refusedFor(/does not match the signed message digest/));
    await assert.rejects(verify(await signIid(iidJson({}), other, { signerCert: ca.cert })), refusedFor(/verif/));
    // eu-west-1's (test) certificate signs a document that says us-west-2, and the reverse
    await assert.rejects(
      verify(await signIid(iidJson({}), other)),
      refusedFor(/not signed by the trusted certificate/),
    );
    await assert.rejects(
      verify(await signIid(iidJson({ region: 'eu-west-1' }), ca)),
      refusedFor(/not signed by the trusted/),
    );
    // a real region whose certificate is AWS's (built in): a test key cannot sign for it
    await assert.rejects(
      verify(await signIid(iidJson({ region: 'us-east-1' }), ca)),
      refusedFor(/us-east-1's certificate/),
    );
    await assert.rejects(
      verify(await signIid(iidJson({ region: 'xx-test-9' }), ca)),
      refusedFor(/no AWS RSA-2048 certificate for region "xx-test-9" \(mwi\.yaml ec2\.region_certificates adds one\)/),
    );
  });

  it('stale and future pendingTime', async () => {
    const stale = await signIid(iidJson({ pendingTime: iso(Date.now() - 6 * 60_000) }), ca);
    await assert.rejects(verify(stale), refusedFor(/older than aws_iid_ttl 5m0s/));
    const future = await signIid(iidJson({ pendingTime: iso(Date.now() + 2 * 60_000) }), ca);
    await assert.rejects(verify(future), refusedFor(/in the future/));
  });

  it('identity fields outside the signed content are never read: beside it in the payload, in unsigned attributes', async () => {
    const doc = await signIid(iidJson({}), ca, {
      unsigned: {
        '1.2.840.113549.1.9.25.3': JSON.stringify({ accountId: '999999999999', instanceId: 'i-ffffffffffffffff' }),
      },
      carry: [other.cert],
    });
    const v = await verify(doc, {
      accountId: '999999999999',
      instanceId: 'i-ffffffffffffffff',
      region: 'eu-west-1',
      document_json: iidJson({ accountId: '999999999999' }),
    });
    assert.equal(v.attributes?.aws_account, ACCOUNT);
    assert.equal(v.attributes?.aws_instance_id, 'i-0123456789abcdef0');
    assert.equal(v.attributes?.aws_region, 'us-west-2');
  });

  it("DSA /pkcs7 documents: refused with a message pointing to rsa2048 (the caller's mistake, nothing secret)", async () => {
    await assert.rejects(
      verify(await dsaIid(iidJson({}), ca)),
      refusedFor(
        /signed with DSA.*\/pkcs7/,
        /sends the RSA-2048 instance identity document \(\/latest\/dynamic\/instance-identity\/rsa2048\), not the DSA-signed \/pkcs7 one/,
      ),
    );
  });

  it('truncated, oversized, not base64, not a document, missing, no identity in the signed content', async () => {
    const doc = (await signIid(iidJson({}), ca)).replace(/\n/g, '');
    await assert.rejects(verify(doc.slice(0, 600)), refusedFor(/document: pkcs7|not base64/));
    await assert.rejects(verify(`${doc}${'A'.repeat(20_000)}`), refusedFor(/document: \d+ characters/));
    await assert.rejects(verify('@@@@'), refusedFor(/not base64/));
    await assert.rejects(
      verify(Buffer.from('{"region":"us-west-2"}').toString('base64')),
      refusedFor(/document: pkcs7/),
    );
    await assert.rejects(verify(undefined), refusedFor(/document: missing/));
    await assert.rejects(verify(await signIid('{"region":"us-west-2"}', ca)), refusedFor(/no 12-digit accountId/));
    await assert.rejects(
      verify(await signIid('[1,2]', ca)),
      refusedFor(/no AWS RSA-2048 certificate for region "undefined"/),
    );
  });
});

describe('ec2 through the join pipeline: one EC2 instance, one bot instance (trust on first use)', () => {
  const tmp = tempDir('ec2-pipeline');
  let ctx: AuthContext;
  let admin: AdminApi;
  let ca: TestRegionCa;
  before(async () => {
    ca = await testRegionCa();
    writeFileSync(join(tmp.path, 'us-west-2.pem'), ca.pem);
    const base = await testContext();
    const ec2 = ec2Section.schema.parse({ region_certificates: { 'us-west-2': join(tmp.path, 'us-west-2.pem') } });
    ctx = { ...base.ctx, methods: joinHandlers(base.ctx.backend, base.ctx.now, { ec2 }, {}) };
    admin = new AdminApi(ctx);
    await admin.create({ kind: 'role', metadata: { name: 'vm' }, spec: { allow: { logins: ['deploy'] } } }, false, 'a');
    for (const bot of ['vm', 'other-bot'])
      await admin.create({ kind: 'bot', metadata: { name: bot }, spec: { roles: ['vm'] } }, false, 'a');
    for (const [name, bot] of [
      ['ec2-tok', 'vm'],
      ['ec2-other', 'other-bot'],
    ])
      await admin.create(
        {
          kind: 'token',
          metadata: { name },
          spec: { join_method: 'ec2', bot_name: bot, allow: [{ aws_account: ACCOUNT }] },
        },
        false,
        'a',
      );
  });
  after(() => tmp.cleanup());
  const join_ = async (document: string, token = 'ec2-tok') =>
    handleJoin(
      ctx,
      { token, join_method: 'ec2', public_key: (await generateKeys('ed25519')).publicKeyPem, payload: { document } },
      '10.0.0.1',
    );

  it('the same document twice, another of the same instance: refused while the first holds (same token)', async () => {
    const doc = await signIid(iidJson({ instanceId: 'i-00000000000000001' }), ca);
    const first = await join_(doc);
    assert.equal(first.renewable, true);
    const held = /EC2 instance 123456789012-i-00000000000000001 already joined through token ec2-tok as bot instance/;
    await assert.rejects(join_(doc), refusedFor(held, /this EC2 instance has already joined/));
    const later = await signIid(iidJson({ instanceId: 'i-00000000000000001', pendingTime: iso(Date.now()) }), ca);
    await assert.rejects(join_(later), refusedFor(held, /already joined/));
    // an administrator locks the first bot instance: the EC2 instance may join again
    await admin.create(
      { kind: 'lock', metadata: { name: 'release' }, spec: { target: { bot_instance_id: first.instance_id } } },
      false,
      'a',
    );
    await waitFor('the lock in the cache', () => activeLock(ctx, 'vm', first.instance_id) !== undefined);
    const again = await join_(later);
    assert.notEqual(again.instance_id, first.instance_id);
    const events = (await ctx.audit.recent(20)).filter((e) => e.event === 'bot.join' && e.success === true);
    assert.equal(events.length, 2);
  });

  it("review M2: a join through another token is not blocked by the first one's record, and is reported", async () => {
    // whoever reads the instance's IMDS joins through ec2-other first: the intended bot still joins
    const doc = await signIid(iidJson({ instanceId: 'i-00000000000000003' }), ca);
    const squatter = await join_(doc, 'ec2-other');
    const intended = await join_(doc);
    assert.notEqual(intended.instance_id, squatter.instance_id);
    const [warning] = await ctx.audit.recent(1, 'ec2.instance_rejoined_other_token');
    assert.equal(warning?.severity, 'warning');
    assert.equal(warning?.token_id, 'ec2-tok');
    assert.equal(warning?.bot_instance_id, intended.instance_id);
    assert.deepEqual(warning?.other_tokens, ['ec2-other']);
    assert.match(String(warning?.reason), /joined through token ec2-tok after joining through ec2-other/);
    // each token still joins the instance once at a time
    const held = /already joined through token ec2-(tok|other)/;
    await assert.rejects(join_(doc), refusedFor(held, /already joined/));
    await assert.rejects(join_(doc, 'ec2-other'), refusedFor(held, /already joined/));
  });

  it('a record from before per-token records blocks every token while its bot instance holds; it is kept', async () => {
    // a bot instance that joined through ec2-tok, recorded as the old releases did: ACCOUNT-INSTANCE
    const doc = await signIid(iidJson({ instanceId: 'i-00000000000000004' }), ca);
    const holder = await join_(await signIid(iidJson({ instanceId: 'i-0000000000000000f' }), ca));
    const legacyKey = joinRecordKey('ec2', `${ACCOUNT}-i-00000000000000004`);
    const legacy = {
      bot: 'vm',
      bot_instance_id: holder.instance_id,
      data: { aws_account: ACCOUNT, aws_instance_id: 'i-00000000000000004', pending_time: iso(Date.now()) },
    };
    await ctx.backend.create(legacyKey, JSON.stringify(legacy));
    const old = /already joined through some token \(recorded before records were per token\)/;
    await assert.rejects(join_(doc), refusedFor(old, /this EC2 instance has already joined/));
    await assert.rejects(join_(doc, 'ec2-other'), refusedFor(old, /already joined/));
    await admin.create(
      { kind: 'lock', metadata: { name: 'release-old' }, spec: { target: { bot_instance_id: holder.instance_id } } },
      false,
      'a',
    );
    await waitFor('the lock in the cache', () => activeLock(ctx, 'vm', holder.instance_id) !== undefined);
    await join_(doc);
    await join_(doc, 'ec2-other');
    assert.deepEqual(JSON.parse((await ctx.backend.get(legacyKey))!.value), legacy, 'the old record is never lost');
  });

  it('two joins of one EC2 instance through one token at once: exactly one commits', async () => {
    const doc = await signIid(iidJson({ instanceId: 'i-00000000000000002' }), ca);
    const results = await Promise.allSettled([join_(doc), join_(doc), join_(doc)]);
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(results));
    for (const r of results.filter((r): r is PromiseRejectedResult => r.status === 'rejected'))
      assert.match(String((r.reason as JoinRefusal).detail), /already joined|written by a concurrent join/);
  });
});
