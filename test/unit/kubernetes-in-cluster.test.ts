import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { handleJoin } from '../../src/auth/join.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { isMwiError } from '../../src/errors.js';
import { testContext } from '../helpers/auth-context.js';
import { tempDir } from '../helpers/procs.js';
import { startFakeKubeApi, type FakeKubeApi } from '../helpers/tokenreview.js';

const GENERIC = /the token is unknown, expired, already used or not valid for this request/;
const lastReason = async (t: Awaited<ReturnType<typeof testContext>>) =>
  (await t.ctx.audit.recent(1, 'bot.join'))[0]?.reason as string;

/** A token shaped like a service account JWT (the fake API server keys its answers on the text). */
const sa = (name: string) =>
  ['{"alg":"RS256"}', JSON.stringify({ name }), `sig-${name}`]
    .map((p) => Buffer.from(p).toString('base64url'))
    .join('.');

describe('kubernetes in_cluster: TokenReview against an API server served by the test', () => {
  const tmp = tempDir('k8s');
  let api: FakeKubeApi;
  let t: Awaited<ReturnType<typeof testContext>>;
  let pub: string;
  const join_ = (token: string, idToken: string) =>
    handleJoin(t.ctx, { token, join_method: 'kubernetes', public_key: pub, payload: { id_token: idToken } }, '-');

  before(async () => {
    api = await startFakeKubeApi('auth-service-sa-token', {
      [sa('good')]: { user: 'system:serviceaccount:prod:deployer', audiences: ['unit'], pod: 'deployer-abc' },
      [sa('other')]: { user: 'system:serviceaccount:prod:intruder', audiences: ['unit'], pod: 'x' },
      [sa('wrong-aud')]: {
        user: 'system:serviceaccount:prod:deployer',
        audiences: ['kubernetes.default.svc'],
        pod: 'deployer-abc',
      },
      [sa('legacy')]: { user: 'system:serviceaccount:prod:deployer', audiences: ['unit'] },
    });
    writeFileSync(join(tmp.path, 'token'), 'auth-service-sa-token\n');
    t = await testContext({}, { apiServer: api.url, tokenPath: join(tmp.path, 'token') });
    pub = (await generateKeys('ec-p256')).publicKeyPem;
    await t.admin.create({ kind: 'role', metadata: { name: 'k' }, spec: {} }, false, 'admin');
    await t.admin.create({ kind: 'bot', metadata: { name: 'k' }, spec: { roles: ['k'] } }, false, 'admin');
    await t.admin.create(
      {
        kind: 'token',
        metadata: { name: 'k8s' },
        spec: {
          join_method: 'kubernetes',
          bot_name: 'k',
          kubernetes: { type: 'in_cluster' },
          allow: [{ service_account: 'prod:deployer' }],
        },
      },
      false,
      'admin',
    );
  });
  after(async () => {
    await api?.close();
    tmp.cleanup();
  });

  it('an authenticated, pod-bound token of an allowed account joins once', async () => {
    const id = await join_('k8s', sa('good'));
    assert.equal(id.bot_name, 'k');
    await assert.rejects(
      join_('k8s', sa('good')),
      (e) => isMwiError(e, 'JOIN_DENIED') && /already used/.test(e.message),
    );
  });

  it('finding 3: another spelling of a used token (whitespace, padding) is refused before any review', async () => {
    const reviews = api.reviews;
    await assert.rejects(join_('k8s', `${sa('good')} `), (e) => isMwiError(e, 'JOIN_DENIED'));
    await assert.rejects(join_('k8s', `${sa('good')}==`), (e) => isMwiError(e, 'JOIN_DENIED'));
    assert.equal(api.reviews, reviews, 'a non-canonical token reached the API server');
  });

  it('unauthenticated, wrong audience, other account and unbound tokens are refused', async () => {
    // before Kubernetes authenticated the token, the answer is the generic one (finding 8); the audit log has why
    await assert.rejects(join_('k8s', sa('forged')), GENERIC);
    assert.match(await lastReason(t), /TokenReview: not authenticated/);
    await assert.rejects(join_('k8s', sa('wrong-aud')), GENERIC);
    assert.match(await lastReason(t), /TokenReview: not authenticated/);
    await assert.rejects(join_('k8s', sa('other')), /matches none of the token's allow rules/);
    await assert.rejects(join_('k8s', sa('legacy')), /only projected \(pod-bound\) service account tokens/);
  });

  it('the Auth Service authenticates to the API server; a wrong credential is refused, not accepted', async () => {
    writeFileSync(join(tmp.path, 'bad'), 'not-the-token');
    const bad = await testContext({}, { apiServer: api.url, tokenPath: join(tmp.path, 'bad') });
    await bad.admin.create({ kind: 'role', metadata: { name: 'k' }, spec: {} }, false, 'admin');
    await bad.admin.create({ kind: 'bot', metadata: { name: 'k' }, spec: { roles: ['k'] } }, false, 'admin');
    await bad.admin.create(
      {
        kind: 'token',
        metadata: { name: 'k8s' },
        spec: { join_method: 'kubernetes', bot_name: 'k', allow: [{ service_account: 'prod:deployer' }] },
      },
      false,
      'admin',
    );
    await assert.rejects(
      handleJoin(
        bad.ctx,
        { token: 'k8s', join_method: 'kubernetes', public_key: pub, payload: { id_token: sa('good') } },
        '-',
      ),
      GENERIC,
    );
    assert.match(await lastReason(bad), /TokenReview HTTP 401/);
  });
});
