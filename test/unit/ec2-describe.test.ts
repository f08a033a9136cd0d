// The ec2 join's optional ec2:DescribeInstances check (a rule naming aws_role), against a local
// https stand-in for STS AssumeRole and EC2 DescribeInstances that verifies SigV4 itself.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, beforeEach, describe, it } from 'node:test';
import { isMwiError } from '../../src/errors.js';
import { awsEc2Api, awsHost, FAILURE_HELD_MS, type AwsEc2ApiOptions } from '../../src/join/ec2/aws-api.js';
import {
  checkInstanceRunning,
  readDescribeInstances,
  type DescribedInstance,
  type Ec2Api,
} from '../../src/join/ec2/describe.js';
import type { InstanceIdentity } from '../../src/join/ec2/document.js';
import { ec2Section, ec2Server } from '../../src/join/ec2/server.js';
import { errorCode, parseXml, textAt } from '../../src/join/ec2/xml.js';
import { JoinRefusal, type JoinHandler, type ServerDeps, type ServerJoinContext } from '../../src/join/types.js';
import { startAwsApi, type TestAwsApi } from '../helpers/aws-ec2-api.js';
import { iidJson, signIid, testRegionCa, type TestRegionCa } from '../helpers/aws-iid.js';
import { tempDir } from '../helpers/procs.js';

const ACCOUNT = '123456789012';
const ROLE = `arn:aws:iam::${ACCOUNT}:role/mwi-describe-instances`;
const deps = {} as ServerDeps;

function ctxFor(document: string, allow: unknown[]): ServerJoinContext {
  return {
    request: { token: 'ec2-tok', join_method: 'ec2', public_key: '', payload: { document } },
    token: { id: 'ec2-tok', botName: 'robot', spec: { join_method: 'ec2', bot_name: 'robot', allow }, status: {} },
    now: Date.now(),
    readRecord: async () => undefined,
  } as unknown as ServerJoinContext;
}

const refusedFor = (reason: RegExp) => (e: unknown) => {
  assert.ok(e instanceof JoinRefusal, String(e));
  assert.match(String(e.detail), reason);
  return true;
};

describe('ec2 DescribeInstances: reading AWS XML', () => {
  it('reads elements, text and entities; refuses DOCTYPE, comments, CDATA and unbalanced markup', () => {
    const doc = parseXml(
      '<?xml version="1.0" encoding="UTF-8"?>\n<a x="1"><b>one &amp; &lt;two&gt; &#x41;</b><c/></a>',
    );
    assert.equal(textAt(doc, 'b'), 'one & <two> A');
    assert.equal(doc.children[1]?.name, 'c');
    for (const bad of [
      '<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>',
      '<a><!-- c --></a>',
      '<a><![CDATA[x]]></a>',
      '<a><b></a>',
      '<a></a><a></a>',
      '<a>&bogus;</a>',
      'text',
    ])
      assert.throws(() => parseXml(bad), Error, bad);
  });

  it("takes the reservation's ownerId, not a network interface's; STS and EC2 error codes", () => {
    const body =
      '<DescribeInstancesResponse><reservationSet><item><ownerId>123456789012</ownerId><instancesSet><item>' +
      '<instanceId>i-0123456789abcdef0</instanceId><networkInterfaceSet><item><ownerId>999999999999</ownerId>' +
      '</item></networkInterfaceSet><instanceState><code>16</code><name>running</name></instanceState>' +
      '</item></instancesSet></item></reservationSet></DescribeInstancesResponse>';
    assert.deepEqual(readDescribeInstances(body), {
      ownerId: ACCOUNT,
      instanceId: 'i-0123456789abcdef0',
      state: 'running',
    });
    assert.equal(
      readDescribeInstances('<DescribeInstancesResponse><reservationSet/></DescribeInstancesResponse>'),
      undefined,
    );
    assert.throws(() => readDescribeInstances('<Other/>'), refusedFor(/with Other, not DescribeInstancesResponse/));
    assert.equal(errorCode('<ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>'), 'AccessDenied');
    assert.equal(
      errorCode('<Response><Errors><Error><Code>InvalidInstanceID.NotFound</Code></Error></Errors></Response>'),
      'InvalidInstanceID.NotFound',
    );
    assert.equal(errorCode('<html>'), undefined);
  });

  it("checkInstanceRunning (a fake Ec2Api): the first instance must be the document's, its account, running", async () => {
    const id: InstanceIdentity = {
      accountId: ACCOUNT,
      region: 'cn-north-1',
      instanceId: 'i-0123456789abcdef0',
      pendingTime: 0,
    };
    const asked: string[] = [];
    const fake = (answer: DescribedInstance | undefined): Ec2Api => ({
      describeInstance: async (role, region, instanceId) => {
        asked.push(`${role} ${region} ${instanceId}`);
        return answer;
      },
    });
    const role = `arn:aws-cn:iam::${ACCOUNT}:role/r`;
    await checkInstanceRunning(fake({ ownerId: ACCOUNT, instanceId: id.instanceId, state: 'running' }), role, id);
    assert.deepEqual(asked, [`${role} cn-north-1 i-0123456789abcdef0`]);
    for (const [answer, reason] of [
      [undefined, /does not list instance i-0123456789abcdef0/],
      [{ ownerId: ACCOUNT, instanceId: 'i-0ffffffffffffffff', state: 'running' }, /does not list instance/],
      [{ ownerId: '', instanceId: id.instanceId, state: 'running' }, /belongs to account "", not the document's/],
      [{ ownerId: ACCOUNT, instanceId: id.instanceId, state: '' }, /is "", not running/],
      [{ ownerId: ACCOUNT, instanceId: id.instanceId, state: 'stopping' }, /is "stopping", not running/],
    ] as const)
      await assert.rejects(checkInstanceRunning(fake(answer), role, id), refusedFor(reason), JSON.stringify(answer));
    // the role's partition must be the region's: no call is made otherwise
    asked.length = 0;
    await assert.rejects(
      checkInstanceRunning(fake(undefined), `arn:aws:iam::${ACCOUNT}:role/r`, id),
      refusedFor(/not in the partition of region cn-north-1 \(aws-cn\)/),
    );
    assert.deepEqual(asked, []);
  });

  it("AWS's regional hosts: China's end in .cn", () => {
    assert.equal(awsHost('sts', 'us-west-2'), 'sts.us-west-2.amazonaws.com');
    assert.equal(awsHost('ec2', 'cn-north-1'), 'ec2.cn-north-1.amazonaws.com.cn');
    assert.equal(awsHost('ec2', 'us-gov-west-1'), 'ec2.us-gov-west-1.amazonaws.com');
  });
});

describe('ec2 join with aws_role: STS AssumeRole, then EC2 DescribeInstances (https stand-in, SigV4 checked)', () => {
  const tmp = tempDir('ec2-describe');
  let aws: TestAwsApi;
  let ca: TestRegionCa;
  let regionPem: string;
  let ids = 0;
  /** A fresh instance id (each EC2 instance joins a token once). */
  const nextId = () => `i-0${(0xa000000000000000n + BigInt(++ids)).toString(16)}`;

  /** The ec2 handler with the real AWS client, its credentials given (not from the environment). */
  function handler(extra: Partial<AwsEc2ApiOptions> = {}): JoinHandler {
    const config = ec2Section.build(ec2Section.schema.parse({ region_certificates: { 'us-west-2': regionPem } }), deps);
    const api = awsEc2Api({
      forward: { url: new URL(aws.url), ca: readFileSync(aws.caPath, 'utf8') },
      credentials: async () => aws.auth,
      timeoutMs: 1500,
      ...extra,
    });
    return ec2Server.create(deps, (() => ({ ...config, api })) as never);
  }

  /** A signed document of a new instance that EC2 knows in `state`. */
  async function instance(state: 'running' | 'stopped' | 'terminated' | 'pending' = 'running', ownerId = ACCOUNT) {
    const id = nextId();
    aws.instances.set(id, { ownerId, region: 'us-west-2', state });
    return { id, doc: await signIid(iidJson({ instanceId: id }), ca) };
  }

  const count = (prefix: string) => aws.calls.filter((c) => c.startsWith(prefix)).length;

  before(async () => {
    aws = await startAwsApi(tmp.path);
    ca = await testRegionCa();
    regionPem = `${tmp.path}/us-west-2.pem`;
    writeFileSync(regionPem, ca.pem);
  });
  beforeEach(() => {
    aws.roles = new Set([ROLE]);
    aws.ec2Mode = 'ok';
    aws.assumedTtlMs = 3600_000;
    aws.calls = [];
    aws.refused = [];
  });
  after(async () => {
    await aws?.close();
    tmp.cleanup();
  });

  it('joins when the instance is running; the assumed credentials serve later joins (one AssumeRole)', async () => {
    const h = handler();
    const allow = [{ aws_account: ACCOUNT, aws_role: ROLE }];
    const a = await instance();
    const v = await h.verify(ctxFor(a.doc, allow));
    assert.equal(v.attributes?.aws_instance_id, a.id);
    assert.deepEqual(aws.calls, [`AssumeRole ${ROLE}`, `DescribeInstances ${a.id} us-west-2`]);
    assert.deepEqual(aws.refused, [], 'every signature verified');
    for (let i = 0; i < 3; i++) await h.verify(ctxFor((await instance()).doc, allow));
    assert.equal(count('AssumeRole'), 1);
    assert.equal(count('DescribeInstances'), 4);
    // concurrent joins share one AssumeRole too
    const h2 = handler();
    const docs = await Promise.all([instance(), instance(), instance()]);
    await Promise.all(docs.map((d) => h2.verify(ctxFor(d.doc, allow))));
    assert.equal(count('AssumeRole'), 2);
  });

  it('assumes again once the credentials are within 5 minutes of their expiry', async () => {
    aws.assumedTtlMs = 4 * 60_000;
    const h = handler();
    const allow = [{ aws_account: ACCOUNT, aws_role: ROLE }];
    await h.verify(ctxFor((await instance()).doc, allow));
    await h.verify(ctxFor((await instance()).doc, allow));
    assert.equal(count('AssumeRole'), 2);
    aws.assumedTtlMs = 3600_000;
    let now = Date.now();
    const h2 = handler({ now: () => now });
    await h2.verify(ctxFor((await instance()).doc, allow));
    now += 50 * 60_000;
    await h2.verify(ctxFor((await instance()).doc, allow));
    assert.equal(count('AssumeRole'), 3);
    now += 6 * 60_000; // 56 minutes of 60: shortly before expiry
    await h2.verify(ctxFor((await instance()).doc, allow));
    assert.equal(count('AssumeRole'), 4);
  });

  it('a document already held through this token is refused before any AWS call (a replayed copy)', async () => {
    const { doc } = await instance();
    const ctx = ctxFor(doc, [{ aws_account: ACCOUNT, aws_role: ROLE }]);
    ctx.readRecord = async (id: string) =>
      id.endsWith('@ec2-tok')
        ? {
            revision: 1,
            data: {},
            botName: 'robot',
            instanceId: 'bi-1',
            holder: { live: true, used: true, sameKey: false, ended: false },
          }
        : undefined;
    // (before: every replay made the Auth Service call DescribeInstances in the victim's account)
    await assert.rejects(handler().verify(ctx), refusedFor(/already joined/));
    assert.deepEqual(aws.calls, []);
  });

  it('a rule without aws_role makes no AWS call', async () => {
    await handler().verify(ctxFor((await instance('stopped')).doc, [{ aws_account: ACCOUNT }]));
    assert.deepEqual(aws.calls, []);
  });

  it('refused unless running: stopped, terminated, pending', async () => {
    const h = handler();
    for (const state of ['stopped', 'terminated', 'pending'] as const) {
      const { id, doc } = await instance(state);
      await assert.rejects(
        h.verify(ctxFor(doc, [{ aws_account: ACCOUNT, aws_role: ROLE }])),
        (e) => {
          refusedFor(new RegExp(`EC2 instance ${id} is "${state}", not running`))(e);
          assert.equal((e as JoinRefusal).claims?.aws_instance_id, id, 'the signed identity kept for --from-audit');
          return true;
        },
        state,
      );
    }
  });

  it('refused: an instance EC2 does not know, or one of another account', async () => {
    const h = handler();
    const allow = [{ aws_account: ACCOUNT, aws_role: ROLE }];
    const unknown = await signIid(iidJson({ instanceId: 'i-0fffffffffffffff0' }), ca);
    await assert.rejects(h.verify(ctxFor(unknown, allow)), refusedFor(/does not list instance i-0fffffffffffffff0/));
    const other = await instance('running', '210987654321');
    await assert.rejects(
      h.verify(ctxFor(other.doc, allow)),
      refusedFor(new RegExp(`${other.id} belongs to account "210987654321", not the document's ${ACCOUNT}`)),
    );
  });

  it('refused: AssumeRole denied, or the Auth Service signs with a wrong secret; a failure is held 15 s', async () => {
    aws.roles = new Set();
    let now = Date.now();
    const h = handler({ now: () => now });
    const allow = [{ aws_account: ACCOUNT, aws_role: ROLE }];
    const { doc } = await instance();
    const denied = refusedFor(new RegExp(`STS AssumeRole of ${ROLE} answered HTTP 403 \\(AccessDenied\\)`));
    // (before: 20 concurrent joins made 20 AssumeRole calls, one after another, in a review)
    const all = await Promise.allSettled(Array.from({ length: 20 }, () => h.verify(ctxFor(doc, allow))));
    for (const r of all) assert.ok(r.status === 'rejected' && denied(r.reason));
    assert.equal(count('AssumeRole'), 1);
    aws.roles = new Set([ROLE]);
    // the failure answers the joins of the next FAILURE_HELD_MS without asking STS again
    await assert.rejects(h.verify(ctxFor(doc, allow)), denied);
    assert.equal(count('AssumeRole'), 1);
    now += FAILURE_HELD_MS;
    assert.ok(await h.verify(ctxFor(doc, allow)), 'then STS is asked again');
    assert.equal(count('AssumeRole'), 2);
    const forged = handler({ credentials: async () => ({ ...aws.auth, secretAccessKey: 'wrong' }) });
    await assert.rejects(
      forged.verify(ctxFor((await instance()).doc, allow)),
      refusedFor(/STS AssumeRole of .* answered HTTP 403 \(SignatureDoesNotMatch\)/),
    );
    assert.deepEqual(aws.refused, ['SignatureDoesNotMatch']);
  });

  it('refused: EC2 answering 403, 500, garbage, a redirect (not followed), too much, or too slowly', async () => {
    const h = handler();
    const allow = [{ aws_account: ACCOUNT, aws_role: ROLE }];
    for (const [mode, reason] of [
      ['403', /EC2 DescribeInstances answered HTTP 403 \(UnauthorizedOperation\)/],
      ['500', /EC2 DescribeInstances answered HTTP 500 \(InternalError\)/],
      ['garbage', /EC2 DescribeInstances answered 200 with something that is not XML/],
      ['redirect', /EC2 DescribeInstances answered HTTP 307/],
      ['huge', /EC2 DescribeInstances at ec2\.us-west-2\.amazonaws\.com not reached: answer longer than 256 KiB/],
      ['slow', /EC2 DescribeInstances at ec2\.us-west-2\.amazonaws\.com not reached: no answer within 1\.5s/],
    ] as const) {
      aws.ec2Mode = mode;
      await assert.rejects(h.verify(ctxFor((await instance()).doc, allow)), refusedFor(reason), mode);
    }
    assert.equal(count('AssumeRole'), 1);
  });

  it('the first rule that matches decides (as Teleport): its aws_role refusing is not passed over', async () => {
    const { doc } = await instance('stopped');
    await assert.rejects(
      handler().verify(ctxFor(doc, [{ aws_account: ACCOUNT, aws_role: ROLE }, { aws_account: ACCOUNT }])),
      refusedFor(/is "stopped", not running/),
    );
  });

  it("a rule with only aws_role is bounded to the role's account; a stored rule with a bad role refuses", async () => {
    const h = handler();
    const { doc } = await instance();
    const v = await h.verify(ctxFor(doc, [{ aws_role: ROLE }]));
    assert.deepEqual(v.attributes?.matched_rule, { aws_account: ACCOUNT, aws_role: ROLE });
    const otherRole = 'arn:aws:iam::210987654321:role/describe';
    await assert.rejects(h.verify(ctxFor(doc, [{ aws_role: otherRole }])), refusedFor(/no allow rule matches/));
    await assert.rejects(
      h.verify(ctxFor(doc, [{ aws_account: ACCOUNT, aws_role: 'describe' }])),
      refusedFor(/aws_role "describe" is not an IAM role ARN/),
    );
    await assert.rejects(
      h.verify(ctxFor(doc, [{ aws_account: ACCOUNT, aws_role: `arn:aws-cn:iam::${ACCOUNT}:role/r` }])),
      refusedFor(/not in the partition of region us-west-2 \(aws\)/),
    );
  });

  it('mwi.yaml ec2.forward_url and forward_ca_path; the Auth Service credentials from the AWS default chain', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, aws.authEnv());
    try {
      const config = ec2Section.build(
        ec2Section.schema.parse({
          region_certificates: { 'us-west-2': regionPem },
          forward_url: aws.url,
          forward_ca_path: aws.caPath,
        }),
        deps,
      );
      const h = ec2Server.create(deps, (() => config) as never);
      assert.ok(await h.verify(ctxFor((await instance()).doc, [{ aws_account: ACCOUNT, aws_role: ROLE }])));
      assert.equal(count('AssumeRole'), 1);
      // without forward_ca_path the stand-in's certificate is not trusted
      const untrusted = ec2Section.build(ec2Section.schema.parse({ forward_url: aws.url }), deps);
      const h2 = ec2Server.create(deps, (() => ({ ...config, api: untrusted.api })) as never);
      await assert.rejects(
        h2.verify(ctxFor((await instance()).doc, [{ aws_account: ACCOUNT, aws_role: ROLE }])),
        refusedFor(/STS AssumeRole of .* at sts\.us-west-2\.amazonaws\.com not reached: .*certificate/),
      );
    } finally {
      for (const k of Object.keys(aws.authEnv())) if (saved[k] === undefined) delete process.env[k];
    }
  });

  it('mwi.yaml ec2: forward_url https only, without a path; forward_ca_path only with it, readable', () => {
    const parse = (o: unknown) => ec2Section.schema.safeParse(o);
    assert.equal(parse({ forward_url: 'http://127.0.0.1:9' }).success, false);
    assert.equal(parse({ forward_url: 'https://127.0.0.1:9/sts' }).success, false);
    assert.equal(parse({ forward_ca_path: '/x.pem' }).success, false);
    assert.equal(parse({ forward_url: 'https://127.0.0.1:9', forward_ca_path: '/x.pem' }).success, true);
    assert.throws(
      () =>
        ec2Section.build(ec2Section.schema.parse({ forward_url: aws.url, forward_ca_path: '/nonexistent.pem' }), deps),
      (e) => isMwiError(e, 'BAD_CONFIG') && /ec2\.forward_ca_path: cannot read \/nonexistent\.pem/.test(e.message),
    );
  });
});
