import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadAuthConfig } from '../../src/auth/config.js';
import { isMwiError } from '../../src/errors.js';
import type { ClientJoinContext } from '../../src/join/client-types.js';
import { DEFAULT_STS_HOSTS } from '../../src/join/iam/hosts.js';
import { iamClient } from '../../src/join/iam/client.js';
import type { IamJoinPayload } from '../../src/join/iam/wire.js';
import { prepareTokenSpec } from '../../src/join/token-spec.js';
import { iamHandler, joinCtx } from '../helpers/aws.js';
import { startImds, type TestImds } from '../helpers/imds.js';
import { tempDir } from '../helpers/procs.js';
import { startSts, testPrincipal, type TestSts } from '../helpers/sts.js';

const ACCOUNT = '123456789012';

/** tbot's client half, run in this process with `env` as its environment. */
async function clientPayload(env: NodeJS.ProcessEnv, challenge = 'ch-1'): Promise<IamJoinPayload> {
  const saved = process.env;
  const tmp = tempDir('iam-home');
  // no shared config or profile of this machine's user can reach the AWS chain
  process.env = {
    PATH: saved.PATH,
    HOME: tmp.path,
    AWS_CONFIG_FILE: join(tmp.path, 'none'),
    AWS_SHARED_CREDENTIALS_FILE: join(tmp.path, 'none'),
    ...env,
  };
  const logs: string[] = [];
  const ctx = {
    challenge: async () => ({ challenge, challenge_id: 'cid' }),
    log: { info: (m: string) => logs.push(m), warn: (m: string) => logs.push(m) },
  } as unknown as ClientJoinContext;
  try {
    return (await iamClient.payload(ctx)) as IamJoinPayload;
  } finally {
    process.env = saved;
    tmp.cleanup();
  }
}

const hostOf = (p: IamJoinPayload) =>
  /\r\nhost: ([^\r]+)\r\n/.exec(Buffer.from(p.sts_request, 'base64').toString())?.[1];

describe('iam: tbot signs, the Auth Service checks and asks STS (the stand-in checks SigV4 itself)', () => {
  let sts: TestSts;
  let imds: TestImds;
  const envUser = testPrincipal(ACCOUNT, 'ci-role', 'build-7');
  const profile = testPrincipal(ACCOUNT, 'ec2-role', 'i-0abc');
  before(async () => {
    sts = await startSts([envUser, profile]);
    imds = await startImds({ region: 'eu-central-1', principal: profile });
  });
  after(async () => {
    await sts.close();
    await imds.close();
  });
  const keys = {
    AWS_ACCESS_KEY_ID: envUser.accessKeyId,
    AWS_SECRET_ACCESS_KEY: envUser.secretAccessKey,
    AWS_SESSION_TOKEN: envUser.sessionToken,
  };

  it('credentials from the environment, region from AWS_REGION: joins with what STS answered', async () => {
    const p = await clientPayload({ ...keys, AWS_REGION: 'us-west-2', AWS_EC2_METADATA_DISABLED: 'true' });
    assert.equal(hostOf(p), 'sts.us-west-2.amazonaws.com');
    const v = await iamHandler({ forward_url: sts.url }).verify(joinCtx(p, 'ch-1', [{ aws_account: ACCOUNT }]));
    assert.deepEqual(v.attributes, {
      aws_account: ACCOUNT,
      aws_arn: envUser.arn,
      aws_user_id: envUser.userId,
      sts_host: 'sts.us-west-2.amazonaws.com',
      matched_rule: { aws_account: ACCOUNT },
    });
    assert.deepEqual(sts.requests.at(-1), { host: 'sts.us-west-2.amazonaws.com', verified: true });
  });

  it('credentials and region from IMDSv2 (an EC2 instance profile): the AWS SDK chain reaches it', async () => {
    const p = await clientPayload({ AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url });
    assert.equal(hostOf(p), 'sts.eu-central-1.amazonaws.com');
    const v = await iamHandler({ forward_url: sts.url }).verify(
      joinCtx(p, 'ch-1', [{ aws_arn: '*:assumed-role/ec2-role/*' }]),
    );
    assert.equal(v.attributes?.aws_arn, profile.arn);
    assert.ok(imds.requests.includes('/latest/meta-data/placement/region'));
  });

  it('endpoints: global without a region, FIPS with AWS_USE_FIPS_ENDPOINT, China, none where AWS has none', async () => {
    const base = { ...keys, AWS_EC2_METADATA_DISABLED: 'true' };
    assert.equal(hostOf(await clientPayload(base)), 'sts.amazonaws.com');
    assert.equal(
      hostOf(await clientPayload({ ...base, AWS_USE_FIPS_ENDPOINT: 'true' })),
      'sts-fips.us-east-1.amazonaws.com',
    );
    const fips = { ...base, AWS_USE_FIPS_ENDPOINT: 'true', AWS_DEFAULT_REGION: 'us-east-2' };
    assert.equal(hostOf(await clientPayload(fips)), 'sts-fips.us-east-2.amazonaws.com');
    assert.equal(hostOf(await clientPayload({ ...base, AWS_REGION: 'cn-north-1' })), 'sts.cn-north-1.amazonaws.com.cn');
    await assert.rejects(
      clientPayload({ ...base, AWS_USE_FIPS_ENDPOINT: 'true', AWS_REGION: 'eu-west-1' }),
      (e) =>
        isMwiError(e, 'BAD_CONFIG') &&
        /AWS_USE_FIPS_ENDPOINT: AWS has no FIPS STS endpoint in eu-west-1/.test(e.message),
    );
    await assert.rejects(
      clientPayload({ ...base, AWS_REGION: 'mars-1' }),
      (e) => isMwiError(e, 'BAD_CONFIG') && /AWS_REGION: not an AWS region/.test(e.message),
    );
  });

  it('no credentials anywhere: a configuration error naming the AWS default chain', async () => {
    await assert.rejects(
      clientPayload({ AWS_EC2_METADATA_DISABLED: 'true', AWS_REGION: 'us-east-1' }),
      (e) => isMwiError(e, 'BAD_CONFIG') && /no AWS credentials to sign with.*AWS_ACCESS_KEY_ID/.test(e.message),
    );
  });

  it('the allow-list: the global, every regional, China, GovCloud and FIPS host; fips: true keeps the FIPS ones', async () => {
    for (const h of [
      'sts.amazonaws.com',
      'sts.eu-west-1.amazonaws.com',
      'sts.cn-northwest-1.amazonaws.com.cn',
      'sts.us-gov-west-1.amazonaws.com',
      'sts-fips.us-east-1.amazonaws.com',
    ])
      assert.ok(DEFAULT_STS_HOSTS.includes(h), h);
    const p = await clientPayload({ ...keys, AWS_REGION: 'us-west-2', AWS_EC2_METADATA_DISABLED: 'true' });
    const fipsOnly = iamHandler({ forward_url: sts.url, fips: true });
    await assert.rejects(fipsOnly.verify(joinCtx(p, 'ch-1', [{ aws_account: ACCOUNT }])), (e) =>
      /host "sts.us-west-2.amazonaws.com" is not an allowed STS endpoint/.test(
        String((e as { detail?: string }).detail),
      ),
    );
    const fp = await clientPayload({ ...keys, AWS_REGION: 'us-west-2', AWS_USE_FIPS_ENDPOINT: 'true' });
    assert.ok((await fipsOnly.verify(joinCtx(fp, 'ch-1', [{ aws_account: ACCOUNT }]))).attributes);
    const own = iamHandler({ forward_url: sts.url, sts_hosts: ['sts.eu-west-1.amazonaws.com'] });
    await assert.rejects(own.verify(joinCtx(p, 'ch-1', [{ aws_account: ACCOUNT }])));
  });
});

describe('mwi.yaml iam', () => {
  const load = (text: string) => {
    const tmp = tempDir('iam-yaml');
    try {
      writeFileSync(join(tmp.path, 'mwi.yaml'), text);
      return loadAuthConfig(join(tmp.path, 'mwi.yaml'), {}).joinMethods.iam;
    } finally {
      tmp.cleanup();
    }
  };
  it('parses, with the defaults when absent', () => {
    assert.deepEqual(load('listen: 127.0.0.1:0\n'), { fips: false });
    assert.deepEqual(load('iam: { fips: true, forward_url: "http://127.0.0.1:9/" }\n'), {
      fips: true,
      forward_url: 'http://127.0.0.1:9/',
    });
  });
  it('names the field at fault', () => {
    for (const [text, message] of [
      ['iam: { forward_url: "http://sts.example.com" }\n', /iam\.forward_url: expected https:\/\/HOST\[:PORT\]/],
      ['iam: { forward_url: "https://x.example/path" }\n', /iam\.forward_url: .*without a path/],
      ['iam: { sts_hosts: ["https://sts.amazonaws.com"] }\n', /iam\.sts_hosts\[0\]: expected a host name/],
      ['iam: { sts_hosts: ["sts.eu-west-1.amazonaws.com"], fips: true }\n', /iam\.fips: fips: true, but none/],
      ['iam: { forward_ca_path: /x }\n', /iam\.forward_ca_path: only with forward_url/],
      ['iam: { fips: yes please }\n', /iam\.fips: Expected boolean/],
      ['iam: { sts_host: [] }\n', /iam\.sts_host: unknown key/],
    ] as const) {
      assert.throws(
        () => load(text),
        (e) => isMwiError(e, 'BAD_CONFIG') && message.test(e.message),
        text,
      );
    }
  });
});

describe('iam tokens: Teleport shape (rules at spec.allow)', () => {
  const spec = (extra: Record<string, unknown>) => ({
    roles: ['Bot'],
    join_method: 'iam',
    bot_name: 'robot',
    ...extra,
  });
  it('accepts aws_account and aws_arn rules at spec.allow, kept there', () => {
    const allow = [{ aws_account: ACCOUNT, aws_arn: 'arn:aws:sts::123456789012:assumed-role/ci-role/*' }];
    const out = prepareTokenSpec(spec({ allow }), 0);
    assert.deepEqual(out.spec.allow, allow);
    assert.deepEqual(out.notes, []);
  });
  it('notes what an iam token does not read', () => {
    const out = prepareTokenSpec(spec({ allow: [{ aws_account: ACCOUNT }], aws_iid_ttl: '5m', iam: {} }), 0);
    assert.deepEqual(out.notes, [
      'spec.aws_iid_ttl is not used by join method iam (ignored)',
      'spec.iam is not used by join method iam (ignored)',
    ]);
  });
  it('refuses rules that name no AWS identity or use ec2 fields, naming the field', () => {
    for (const [allow, field, message] of [
      [undefined, 'spec.allow', /at least one allow rule/],
      [[], 'spec.allow', /at least one allow rule/],
      [
        [{ aws_regions: ['us-east-1'] }],
        'spec.allow[0].aws_regions',
        /unknown field aws_regions \(expected one of: aws_account, aws_arn\)/,
      ],
      [[{ aws_role: 'r' }], 'spec.allow[0].aws_role', /unknown field/],
      [[{ aws_arn: '*' }], 'spec.allow[0]', /must name the workload/],
      [[{ aws_account: '1234' }], 'spec.allow[0].aws_account', /12-digit/],
    ] as const) {
      assert.throws(
        () => prepareTokenSpec(spec(allow === undefined ? {} : { allow }), 0),
        (e) => isMwiError(e, 'BAD_REQUEST') && e.field === field && message.test(e.message),
        JSON.stringify(allow),
      );
    }
  });
});

describe('iam: tctl tokens test', () => {
  const token = {
    id: 't',
    botName: 'robot',
    spec: { join_method: 'iam', allow: [{ aws_account: ACCOUNT }] },
    status: {},
  };
  it('runs the rules on the claims a refused join recorded', async () => {
    const h = iamHandler({});
    const claims = { aws_account: '999999999999', aws_arn: 'arn:aws:iam::999999999999:user/x', aws_user_id: 'AIDA' };
    const out = await h.explain!(token, { recordedClaims: claims, recordedAt: 'then' }, 'unit', 0);
    assert.equal(out.wouldJoin, false);
    assert.deepEqual(out.rules[0]?.fields, [
      { field: 'aws_account', claim: 'aws_account', want: ACCOUNT, got: '999999999999', ok: false },
    ]);
  });
  it('says why a signed request cannot be tested on its own', async () => {
    const out = await iamHandler({}).explain!(token, { idToken: 'x' }, 'unit', 0);
    assert.equal(out.wouldJoin, false);
    assert.match(out.checks[0]!.detail, /--from-audit/);
  });
});
