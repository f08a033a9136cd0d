import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AdminApi } from '../../src/auth/admin.js';
import type { AuthContext } from '../../src/auth/context.js';
import { handleChallenge, handleJoin } from '../../src/auth/join.js';
import { joinHandlers } from '../../src/auth/platform.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { iamSection } from '../../src/join/iam/server.js';
import { CHALLENGE_HEADER, STS_BODY } from '../../src/join/iam/wire.js';
import { JoinRefusal } from '../../src/join/types.js';
import { b64, iamHandler, joinCtx, rawRequest, signSts, type SignOptions } from '../helpers/aws.js';
import { testContext } from '../helpers/auth-context.js';
import { startSts, testPrincipal, type TestSts } from '../helpers/sts.js';

const ACCOUNT = '123456789012';
const GENERIC = /^the join was refused \(the token is unknown, expired, already used or not valid for this request\)/;

/** A refusal whose audit reason matches `reason`; the caller sees only the generic public message. */
function refusedFor(reason: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof JoinRefusal, String(e));
    assert.match(String(e.detail), reason);
    return true;
  };
}

describe('iam: the hostile corpus (each refused, the reason audited, STS asked only when the request is sound)', () => {
  let sts: TestSts;
  const p = testPrincipal(ACCOUNT, 'ci-role', 'build-1');
  const other = testPrincipal('210987654321', 'ci-role', 'build-1');
  const ch = 'the-challenge';
  const allow = [{ aws_account: ACCOUNT, aws_arn: 'arn:aws:sts::123456789012:assumed-role/ci-role/*' }];
  before(async () => {
    sts = await startSts([p, other]);
  });
  after(() => sts.close());

  const verify = (raw: string | Buffer, rules: unknown[] = allow) =>
    iamHandler({ forward_url: sts.url }).verify(joinCtx({ challenge_id: 'c', sts_request: b64(raw) }, ch, rules));
  const signed = async (o: Partial<SignOptions> = {}, who = p) => (await signSts(who, { challenge: ch, ...o })).raw;
  /** Refused before anything is sent to STS. */
  async function refusedLocally(raw: string | Buffer, reason: RegExp) {
    const before = sts.requests.length;
    await assert.rejects(verify(raw), refusedFor(reason));
    assert.equal(sts.requests.length, before, 'nothing may reach STS');
  }

  it('the sound request joins (the baseline every case below changes one thing of)', async () => {
    assert.equal((await verify(await signed())).attributes?.aws_arn, p.arn);
  });

  it('a host not on the allow-list: a look-alike, an IP, a scheme, a port, another case', async () => {
    for (const host of [
      'sts.amazonaws.com.evil.example',
      'evil.example',
      '52.94.0.1',
      '127.0.0.1',
      'http://sts.amazonaws.com',
      'sts.amazonaws.com:443',
      'STS.amazonaws.com',
      'sts.amazonaws.com.',
    ]) {
      const raw = await signed({ host: 'sts.amazonaws.com', unsigned: { host } });
      await refusedLocally(raw, /is not an allowed STS endpoint/);
    }
    await refusedLocally(await signed({ drop: ['host'] }), /host "" is not an allowed STS endpoint/);
    await refusedLocally(await signed({ host: 'sts.amazonaws.com.evil.example' }), /not an allowed STS endpoint/);
  });

  it('another method, path or body; extra Action parameters in the query or the body', async () => {
    await refusedLocally(await signed({ method: 'GET' }), /GET \/ HTTP\/1\.1 \(expected POST/);
    await refusedLocally(await signed({ path: '/x' }), /POST \/x/);
    await refusedLocally(await signed({ path: '/?Action=AssumeRole' }), /POST \/\?Action=AssumeRole/);
    for (const body of [
      'Action=AssumeRole&Version=2011-06-15',
      `${STS_BODY}&Action=AssumeRole`,
      `${STS_BODY}&RoleArn=arn:aws:iam::1:role/x`,
      `${STS_BODY}\n`,
      '',
    ])
      await refusedLocally(await signed({ body }), /the body is not exactly|Content-Length/);
    const raw = await signed();
    await refusedLocally(raw.replace(/content-length: 43/, 'content-length: 40'), /Content-Length does not match/);
    await refusedLocally(raw.replace('HTTP/1.1', 'HTTP/1.0'), /expected POST \/ HTTP\/1\.1/);
  });

  it('the challenge missing, wrong, or not among the signed headers', async () => {
    await refusedLocally(await signed({ challenge: null }), /x-mwi-challenge is not a signed header/);
    await refusedLocally(await signed({ challenge: 'another' }), /not the one issued/);
    const unsignedOne = await signed({ challenge: null, unsigned: { [CHALLENGE_HEADER]: ch } });
    await refusedLocally(unsignedOne, /x-mwi-challenge is not a signed header/);
    const noHeader = await signed({ drop: [CHALLENGE_HEADER] });
    await refusedLocally(noHeader, /no challenge header/);
    // no challenge was issued for this join at all
    await assert.rejects(
      iamHandler({ forward_url: sts.url }).verify(joinCtx({ sts_request: b64(await signed()) }, undefined, allow)),
      refusedFor(/no valid challenge/),
    );
  });

  it('requests AWS might read differently: repeated or folded headers, bare LF, transfer coding, other headers', async () => {
    const raw = await signed();
    await refusedLocally(raw.replace('\r\naccept:', '\r\nhost: evil.example\r\naccept:'), /header host given twice/);
    await refusedLocally(
      raw.replace('\r\naccept:', `\r\n${CHALLENGE_HEADER}: x\r\naccept:`),
      /header x-mwi-challenge given twice/,
    );
    await refusedLocally(raw.replace('\r\naccept:', '\r\n folded\r\naccept:'), /malformed header line/);
    await refusedLocally(raw.replace('\r\naccept:', '\naccept:'), /bare CR or LF/);
    await refusedLocally(
      raw.replace('\r\naccept:', '\r\ntransfer-encoding: chunked\r\naccept:'),
      /transfer-encoding is not accepted/,
    );
    await refusedLocally(
      raw.replace('\r\naccept:', '\r\nx-forwarded-host: evil\r\naccept:'),
      /x-forwarded-host is not accepted/,
    );
    await refusedLocally(
      raw.replace('accept: application/json', 'accept: text/xml'),
      /Accept is not application\/json/,
    );
    await refusedLocally(raw.replace('\r\n\r\n', '\r\n'), /no end of headers/);
    await refusedLocally(Buffer.alloc(20_000, 'a'), /no sts_request|bytes \(expected 1 to/);
    await assert.rejects(
      iamHandler({ forward_url: sts.url }).verify(
        joinCtx({ challenge_id: 'c', sts_request: 'not base64!' }, ch, allow),
      ),
      refusedFor(/no sts_request \(base64\)/),
    );
    const otherService = await signSts(p, { challenge: ch });
    await refusedLocally(otherService.raw.replace('/sts/aws4_request', '/iam/aws4_request'), /service iam, not sts/);
  });

  it('a signature STS does not accept: another secret, another region in the scope (STS says 403)', async () => {
    const forged = { ...p, secretAccessKey: 'not-the-secret' };
    await assert.rejects(
      verify(await signed({}, forged)),
      refusedFor(/STS answered HTTP 403 \(SignatureDoesNotMatch\)/),
    );
    await assert.rejects(
      verify(await signed({ region: 'eu-west-1' })),
      refusedFor(/HTTP 403 \(SignatureDoesNotMatch\)/),
    );
    const raw = await signed();
    // a header changed after signing: AWS's check, which the stand-in makes too
    await assert.rejects(
      verify(raw.replace(/x-amz-security-token: \S+/, 'x-amz-security-token: other')),
      refusedFor(/HTTP 403/),
    );
  });

  it('STS answering 403, 500 or garbage, or an Arn of another account: refused', async () => {
    try {
      for (const [mode, reason] of [
        ['403', /STS answered HTTP 403 \(AccessDenied\)/],
        ['500', /STS answered HTTP 500 \(InternalFailure\)/],
        ['garbage', /not JSON/],
        ['other-account', /Arn .* is not of account 999999999999/],
      ] as const) {
        sts.mode = mode;
        await assert.rejects(verify(await signed()), refusedFor(reason), mode);
      }
    } finally {
      sts.mode = 'ok';
    }
    await assert.rejects(
      iamHandler({ forward_url: 'http://127.0.0.1:1' }).verify(
        joinCtx({ sts_request: b64(await signed()) }, ch, allow),
      ),
      refusedFor(/STS at sts\.us-west-2\.amazonaws\.com not reached/),
    );
  });

  it('an ARN outside the rule, an account the rule does not name: refused, what STS said kept for tokens test', async () => {
    const outside = testPrincipal(ACCOUNT, 'admin-role', 'x');
    sts.principals.set(outside.accessKeyId, outside);
    await assert.rejects(verify(await signed({}, outside)), (e) => {
      assert.ok(e instanceof JoinRefusal);
      assert.match(String(e.detail), /no allow rule matches/);
      assert.deepEqual(e.claims, { aws_account: ACCOUNT, aws_arn: outside.arn, aws_user_id: outside.userId });
      return true;
    });
    await assert.rejects(verify(await signed({}, other)), refusedFor(/no allow rule matches .*210987654321/));
    // `?` is one character, the match is anchored
    const rules = [{ aws_arn: 'arn:aws:sts::123456789012:assumed-role/ci-rol?/build-?' }];
    assert.ok((await verify(await signed(), rules)).attributes);
    await assert.rejects(verify(await signed(), [{ aws_arn: 'arn:aws:sts::123456789012:assumed-role/ci-role' }]));
  });

  it('the caller never sees the reason: every refusal above carries the generic public message', async () => {
    await assert.rejects(verify(await signed({ challenge: 'another' })), (e) => {
      assert.match((e as Error).message, GENERIC);
      assert.doesNotMatch((e as Error).message, /challenge|sts/i);
      return true;
    });
  });
});

describe('iam through the join pipeline: a replayed signed request is refused (the challenge is single-use)', () => {
  let sts: TestSts;
  let ctx: AuthContext;
  const p = testPrincipal(ACCOUNT, 'ci-role', 'build-2');
  before(async () => {
    sts = await startSts([p]);
    const base = await testContext();
    const iam = iamSection.schema.parse({ forward_url: sts.url });
    ctx = { ...base.ctx, methods: joinHandlers(base.ctx.backend, base.ctx.now, { iam }, {}) };
    const admin = new AdminApi(ctx);
    await admin.create({ kind: 'role', metadata: { name: 'ci' }, spec: { allow: { logins: ['deploy'] } } }, false, 'a');
    await admin.create({ kind: 'bot', metadata: { name: 'ci' }, spec: { roles: ['ci'] } }, false, 'a');
    await admin.create(
      {
        kind: 'token',
        metadata: { name: 'aws-tok' },
        spec: { join_method: 'iam', bot_name: 'ci', allow: [{ aws_account: ACCOUNT }] },
      },
      false,
      'a',
    );
  });
  after(() => sts.close());

  it('the first join succeeds, the same request again is refused; a new challenge does not revive it', async () => {
    const ask = () => handleChallenge(ctx, { token: 'aws-tok', join_method: 'iam', payload: {} }, '127.0.0.1');
    const first = await ask();
    const { raw } = await signSts(p, { challenge: String(first.challenge) });
    const keys = await generateKeys('ed25519');
    const body = (challengeId: string) => ({
      token: 'aws-tok',
      join_method: 'iam',
      public_key: keys.publicKeyPem,
      payload: { challenge_id: challengeId, sts_request: b64(raw) },
    });
    const ok = await handleJoin(ctx, body(first.challenge_id), '127.0.0.1');
    assert.equal(ok.bot_name, 'ci');
    assert.equal(ok.renewable, false);
    await assert.rejects(handleJoin(ctx, body(first.challenge_id), '127.0.0.1'), (e) => {
      assert.match(String((e as JoinRefusal).detail), /challenge already used/);
      return true;
    });
    const second = await ask();
    await assert.rejects(handleJoin(ctx, body(second.challenge_id), '127.0.0.1'), (e) => {
      assert.match(String((e as JoinRefusal).detail), /not the one issued/);
      return true;
    });
    const events = (await ctx.audit.recent(10)).filter((e) => e.event === 'bot.join');
    assert.equal(events.filter((e) => e.success === true && e.aws_arn === p.arn).length, 1);
    const reasons = events.filter((e) => e.success === false).map((e) => String(e.reason));
    assert.equal(reasons.length, 2);
    assert.ok(
      reasons.some((r) => /challenge already used/.test(r)) && reasons.some((r) => /not the one issued/.test(r)),
    );
  });

  it('a raw request for another token of the same challenge is refused before STS is asked', async () => {
    const before = sts.requests.length;
    const bad = rawRequest('POST', '/', { host: 'sts.amazonaws.com' }, STS_BODY);
    await assert.rejects(
      handleJoin(
        ctx,
        {
          token: 'aws-tok',
          join_method: 'iam',
          public_key: (await generateKeys('ed25519')).publicKeyPem,
          payload: { challenge_id: 'c1.forged.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', sts_request: b64(bad) },
        },
        '127.0.0.1',
      ),
      (e) => e instanceof JoinRefusal,
    );
    assert.equal(sts.requests.length, before);
  });
});
