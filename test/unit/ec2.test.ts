import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadAuthConfig } from '../../src/auth/config.js';
import { isMwiError } from '../../src/errors.js';
import type { ClientJoinContext } from '../../src/join/client-types.js';
import { ec2Client } from '../../src/join/ec2/client.js';
import { ec2Section } from '../../src/join/ec2/server.js';
import { prepareTokenSpec } from '../../src/join/token-spec.js';
import {
  JoinRefusal,
  type JoinHandler,
  type ServerDeps,
  type ServerJoinContext,
  type StoredJoinRecord,
} from '../../src/join/types.js';
import {
  ec2Handler,
  iidJson,
  REAL_AWS_DOCUMENT,
  signIid,
  testRegionCa,
  type TestRegionCa,
} from '../helpers/aws-iid.js';
import { startImds } from '../helpers/imds.js';
import { tempDir } from '../helpers/procs.js';

const ACCOUNT = '123456789012';
const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

/** What verify sees of an ec2 join with this document, for a token with this spec. */
function ctxFor(
  document: string,
  spec: Record<string, unknown>,
  records: Record<string, StoredJoinRecord> = {},
  now = Date.now(),
): ServerJoinContext {
  return {
    request: { token: 'ec2-tok', join_method: 'ec2', public_key: '', payload: { document } },
    token: { id: 'ec2-tok', botName: 'robot', spec: { join_method: 'ec2', bot_name: 'robot', ...spec }, status: {} },
    now,
    readRecord: async (id: string) => records[id],
  } as unknown as ServerJoinContext;
}

const INSTANCE = `${ACCOUNT}-i-0123456789abcdef0`;

const refusedFor = (reason: RegExp) => (e: unknown) => {
  assert.ok(e instanceof JoinRefusal, String(e));
  assert.match(String(e.detail), reason);
  return true;
};

describe('ec2: the Auth Service verifies the signed document (a test CA as us-west-2)', () => {
  const tmp = tempDir('ec2-unit');
  let ca: TestRegionCa;
  let h: JoinHandler;
  const allow = [{ aws_account: ACCOUNT }];
  before(async () => {
    ca = await testRegionCa();
    h = ec2Handler(tmp.path, { 'us-west-2': ca });
  });
  after(() => tmp.cleanup());

  it('joins with the identity of the signed content, and records the EC2 instance with the bot instance', async () => {
    const v = await h.verify(ctxFor(await signIid(iidJson({}), ca), { allow }));
    assert.equal(v.attributes?.aws_account, ACCOUNT);
    assert.equal(v.attributes?.aws_region, 'us-west-2');
    assert.equal(v.attributes?.aws_instance_id, 'i-0123456789abcdef0');
    assert.deepEqual(v.attributes?.matched_rule, { aws_account: ACCOUNT });
    // per token (ACCOUNT-INSTANCE@TOKEN), and the instance's list of tokens
    assert.deepEqual(
      v.records?.map((r) => [r.id, r.replaces]),
      [
        [`${INSTANCE}@ec2-tok`, undefined],
        [`${INSTANCE}+tokens`, undefined],
      ],
    );
    assert.equal(v.records?.[0]?.data.token_id, 'ec2-tok');
    assert.deepEqual(v.records?.[1]?.data.tokens, ['ec2-tok']);
    assert.equal(v.events, undefined);
  });

  it('the real AWS document verifies with the built-in certificates (its pendingTime is old: refused for age only)', async () => {
    const real = ec2Handler(tmp.path);
    await assert.rejects(
      real.verify(ctxFor(REAL_AWS_DOCUMENT, { allow: [{ aws_account: '189292791360' }] })),
      refusedFor(/from 2026-02-16T00:38:27\.000Z, older than aws_iid_ttl 5m0s/),
    );
    const then = Date.parse('2026-02-16T00:40:00Z');
    const v = await real.verify(
      ctxFor(REAL_AWS_DOCUMENT, { allow: [{ aws_account: '189292791360' }] }, undefined, then),
    );
    assert.equal(v.attributes?.aws_instance_id, 'i-0c5541936caf78c12');
  });

  it('age: aws_iid_ttl from pendingTime (default 5m, the token may say more); a minute of clock skew', async () => {
    const old = await signIid(iidJson({ pendingTime: iso(Date.now() - 10 * 60_000) }), ca);
    await assert.rejects(h.verify(ctxFor(old, { allow })), refusedFor(/older than aws_iid_ttl 5m0s/));
    assert.ok(await h.verify(ctxFor(old, { allow, aws_iid_ttl: '15m0s' })));
    const future = await signIid(iidJson({ pendingTime: iso(Date.now() + 5 * 60_000) }), ca);
    await assert.rejects(h.verify(ctxFor(future, { allow })), refusedFor(/is in the future/));
    assert.ok(await h.verify(ctxFor(await signIid(iidJson({ pendingTime: iso(Date.now() + 30_000) }), ca), { allow })));
  });

  it('rules: aws_account exactly, the region among aws_regions; what was signed is kept with the refusal', async () => {
    const doc = await signIid(iidJson({}), ca);
    assert.ok(
      await h.verify(ctxFor(doc, { allow: [{ aws_account: ACCOUNT, aws_regions: ['eu-west-1', 'us-west-2'] }] })),
    );
    await assert.rejects(
      h.verify(ctxFor(doc, { allow: [{ aws_account: ACCOUNT, aws_regions: ['eu-west-1'] }] })),
      (e) => {
        assert.ok(e instanceof JoinRefusal);
        assert.match(String(e.detail), /no allow rule matches/);
        assert.equal(e.claims?.aws_region, 'us-west-2');
        return true;
      },
    );
    await assert.rejects(
      h.verify(ctxFor(doc, { allow: [{ aws_account: '210987654321' }] })),
      refusedFor(/no allow rule/),
    );
    // aws_role is not matched against the document: the rule's account decides (its check: ec2-describe.test.ts)
    await assert.rejects(
      h.verify(ctxFor(doc, { allow: [{ aws_account: '210987654321', aws_role: 'arn:aws:iam::1:role/r' }] })),
      refusedFor(/no allow rule/),
    );
  });

  const held = (holder: StoredJoinRecord['holder'], data: Record<string, unknown> = {}): StoredJoinRecord => ({
    revision: 7,
    data,
    botName: 'robot',
    instanceId: 'inst-1',
    holder,
  });
  const LIVE = { live: true, used: true, sameKey: false };

  it('trust on first use: held while its bot instance is valid, released when that one ended, expired or is gone', async () => {
    const doc = await signIid(iidJson({}), ca);
    await assert.rejects(h.verify(ctxFor(doc, { allow }, { [`${INSTANCE}@ec2-tok`]: held(LIVE) })), (e) => {
      assert.ok(e instanceof JoinRefusal);
      assert.match(
        String(e.detail),
        /EC2 instance 123456789012-i-0123456789abcdef0 already joined through token ec2-tok as bot instance inst-1/,
      );
      assert.match(e.message, /this EC2 instance has already joined.*tctl locks add --bot-instance ID/);
      return true;
    });
    for (const holder of [{ ...LIVE, ended: true }, { live: false, used: true, sameKey: false }, undefined]) {
      const v = await h.verify(ctxFor(doc, { allow }, { [`${INSTANCE}@ec2-tok`]: held(holder) }));
      assert.equal(v.records?.[0]?.replaces, 7, JSON.stringify(holder));
    }
  });

  it("per token (review M2): another token's record does not block; the join is reported as a warning", async () => {
    const doc = await signIid(iidJson({}), ca);
    const index = { ...held(LIVE, { tokens: ['other-tok'] }), revision: 3 };
    const v = await h.verify(
      ctxFor(doc, { allow }, { [`${INSTANCE}@other-tok`]: held(LIVE), [`${INSTANCE}+tokens`]: index }),
    );
    assert.deepEqual(
      v.records?.map((r) => [r.id, r.replaces]),
      [
        [`${INSTANCE}@ec2-tok`, undefined],
        [`${INSTANCE}+tokens`, 3],
      ],
    );
    assert.deepEqual(v.records?.[1]?.data.tokens, ['other-tok', 'ec2-tok']);
    assert.equal(v.events?.length, 1);
    assert.equal(v.events?.[0]?.event, 'ec2.instance_rejoined_other_token');
    assert.deepEqual(v.events?.[0]?.other_tokens, ['other-tok']);
    // a token already listed is not written again (no contention with its own rejoins)
    const listed = { ...held(LIVE, { tokens: ['ec2-tok'] }), revision: 4 };
    const again = await h.verify(ctxFor(doc, { allow }, { [`${INSTANCE}+tokens`]: listed }));
    assert.deepEqual(
      again.records?.map((r) => r.id),
      [`${INSTANCE}@ec2-tok`],
    );
    assert.equal(again.events, undefined);
  });

  it('a record from before per-token records (ACCOUNT-INSTANCE) blocks every token, or the one it names', async () => {
    const doc = await signIid(iidJson({}), ca);
    await assert.rejects(
      h.verify(ctxFor(doc, { allow }, { [INSTANCE]: held(LIVE, { aws_account: ACCOUNT }) })),
      refusedFor(/already joined through some token \(recorded before records were per token\) as bot instance inst-1/),
    );
    await assert.rejects(
      h.verify(ctxFor(doc, { allow }, { [INSTANCE]: held(LIVE, { token_id: 'ec2-tok' }) })),
      refusedFor(/already joined through token ec2-tok/),
    );
    const other = await h.verify(ctxFor(doc, { allow }, { [INSTANCE]: held(LIVE, { token_id: 'other-tok' }) }));
    // released, it no longer blocks; it is never overwritten either way
    const released = await h.verify(ctxFor(doc, { allow }, { [INSTANCE]: held({ ...LIVE, ended: true }) }));
    for (const v of [other, released]) assert.ok(!v.records?.some((r) => r.id === INSTANCE));
  });

  it('tctl tokens test: the document checked and the rules, nothing written; or a refused join recorded claims', async () => {
    const token = {
      id: 't',
      botName: 'robot',
      spec: { join_method: 'ec2', allow: [{ aws_account: ACCOUNT, aws_regions: ['eu-west-1'] }] },
      status: {},
    };
    const out = await h.explain!(token, { idToken: await signIid(iidJson({}), ca) }, 'unit', Date.now());
    assert.deepEqual(
      out.checks.map((c) => [c.check, c.ok]),
      [
        ['signature', true],
        ['age', true],
        ['first use', null],
      ],
    );
    assert.equal(out.wouldJoin, false);
    assert.deepEqual(
      out.rules[0]?.fields.find((f) => f.field === 'aws_regions'),
      {
        field: 'aws_regions',
        claim: 'aws_region',
        want: ['eu-west-1'],
        got: 'us-west-2',
        ok: false,
      },
    );
    const bad = await h.explain!(token, { idToken: 'bm90IGEgZG9j' }, 'unit', Date.now());
    assert.deepEqual(
      bad.checks.map((c) => c.ok),
      [false],
    );
    const rec = await h.explain!(
      token,
      { recordedClaims: { aws_account: ACCOUNT, aws_region: 'eu-west-1' }, recordedAt: 't' },
      'unit',
      0,
    );
    assert.equal(rec.wouldJoin, true);
  });
});

describe("ec2 tokens: Teleport's shape (spec.allow, aws_iid_ttl)", () => {
  const spec = (extra: Record<string, unknown>) => ({
    roles: ['Bot'],
    join_method: 'ec2',
    bot_name: 'robot',
    ...extra,
  });
  it('accepts aws_account, aws_regions, aws_iid_ttl and aws_role as Teleport prints them, without notes', () => {
    const allow = [{ aws_account: ACCOUNT, aws_regions: ['us-west-2'] }];
    assert.deepEqual(prepareTokenSpec(spec({ allow, aws_iid_ttl: '5m0s' }), 0).notes, []);
    const role = [{ aws_account: ACCOUNT, aws_role: 'arn:aws:iam::123456789012:role/describe' }];
    const out = prepareTokenSpec(spec({ allow: role }), 0);
    assert.deepEqual(out.spec.allow, role);
    assert.deepEqual(out.notes, []);
    // as in Teleport, a rule may name only aws_role: it is bounded to the role's account
    const only = [{ aws_role: 'arn:aws:iam::123456789012:role/describe' }];
    assert.deepEqual(prepareTokenSpec(spec({ allow: only }), 0).spec.allow, only);
  });
  it('refuses, naming the field: no rules, no account, a bad aws_role, aws_arn (an iam field), a bad TTL', () => {
    for (const [extra, field, message] of [
      [{}, 'spec.allow', /at least one allow rule/],
      [{ allow: [{ aws_regions: ['us-west-2'] }] }, 'spec.allow[0]', /at least one of: aws_account/],
      [{ allow: [{ aws_role: 'arn:aws:iam::1:role/r' }] }, 'spec.allow[0].aws_role', /expected an IAM role ARN/],
      [{ allow: [{ aws_account: ACCOUNT, aws_role: 'describe' }] }, 'spec.allow[0].aws_role', /expected an IAM role/],
      [
        { allow: [{ aws_account: ACCOUNT, aws_role: 'arn:aws:iam::210987654321:role/r' }] },
        'spec.allow[0].aws_role',
        /the role is in account 210987654321, not the rule's aws_account "123456789012": .*Teleport takes such a rule/,
      ],
      [{ allow: [{ aws_account: ACCOUNT, aws_arn: '*' }] }, 'spec.allow[0].aws_arn', /unknown field aws_arn/],
      [{ allow: [{ aws_account: ACCOUNT, aws_regions: [] }] }, 'spec.allow[0].aws_regions', /non-empty list/],
      [{ allow: [{ aws_account: ACCOUNT }], aws_iid_ttl: 'soon' }, 'spec.aws_iid_ttl', /expected a duration above 0/],
      [{ allow: [{ aws_account: ACCOUNT }], aws_iid_ttl: 300 }, 'spec.aws_iid_ttl', /expected a duration/],
    ] as const) {
      assert.throws(
        () => prepareTokenSpec(spec(extra), 0),
        (e) => isMwiError(e, 'BAD_REQUEST') && e.field === field && message.test(e.message),
        JSON.stringify(extra),
      );
    }
  });
});

describe('mwi.yaml ec2', () => {
  it('region_certificates: a region name and a readable PEM file, or an error naming the region', () => {
    const tmp = tempDir('ec2-yaml');
    try {
      const file = join(tmp.path, 'mwi.yaml');
      writeFileSync(file, 'ec2:\n  region_certificates: { "US West": /x.pem }\n');
      assert.throws(
        () => loadAuthConfig(file, {}),
        (e) =>
          isMwiError(e, 'BAD_CONFIG') && /ec2\.region_certificates\.US West: expected an AWS region/.test(e.message),
      );
      const build = (files: Record<string, string>) =>
        ec2Section.build(ec2Section.schema.parse({ region_certificates: files }), {} as ServerDeps);
      assert.throws(
        () => build({ 'us-west-2': '/nonexistent.pem' }),
        (e) =>
          isMwiError(e, 'BAD_CONFIG') &&
          /ec2\.region_certificates\.us-west-2: cannot read \/nonexistent\.pem/.test(e.message),
      );
      writeFileSync(join(tmp.path, 'junk.pem'), 'junk');
      assert.throws(
        () => build({ 'us-west-2': join(tmp.path, 'junk.pem') }),
        (e) => isMwiError(e, 'BAD_CONFIG') && /holds no PEM certificate/.test(e.message),
      );
    } finally {
      tmp.cleanup();
    }
  });
});

describe('ec2: tbot reads the document through IMDSv2', () => {
  it('PUT for a token, then GET with it; no metadata service: UNREACHABLE naming the endpoint', async () => {
    const imds = await startImds({ rsa2048: 'MIAG...doc' });
    const saved = process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
    const ctx = { log: { info: () => {}, warn: () => {} } } as unknown as ClientJoinContext;
    try {
      process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.url;
      assert.deepEqual(await ec2Client.payload(ctx), { document: 'MIAG...doc' });
      assert.deepEqual(imds.requests, ['/latest/dynamic/instance-identity/rsa2048']);
      process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = 'http://127.0.0.1:1';
      await assert.rejects(
        ec2Client.payload(ctx),
        (e) =>
          isMwiError(e, 'UNREACHABLE') &&
          /IMDSv2\) at http:\/\/127\.0\.0\.1:1 did not answer \/latest\/dynamic\/instance-identity\/rsa2048/.test(
            e.message,
          ),
      );
    } finally {
      if (saved === undefined) delete process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT;
      else process.env.AWS_EC2_METADATA_SERVICE_ENDPOINT = saved;
      await imds.close();
    }
  });
});
