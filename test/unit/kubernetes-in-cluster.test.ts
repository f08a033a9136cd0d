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

describe('kubernetes in_cluster: TokenReview against an API server served by the test', () => {
  const tmp = tempDir('k8s');
  let api: FakeKubeApi;
  let t: Awaited<ReturnType<typeof testContext>>;
  let pub: string;
  const join_ = (token: string, idToken: string) => handleJoin(t.ctx, { token, join_method: 'kubernetes', public_key: pub, payload: { id_token: idToken } }, '-');

  before(async () => {
    api = await startFakeKubeApi('auth-service-sa-token', {
      good: { user: 'system:serviceaccount:prod:deployer', audiences: ['unit'], pod: 'deployer-abc' },
      other: { user: 'system:serviceaccount:prod:intruder', audiences: ['unit'], pod: 'x' },
      'wrong-aud': { user: 'system:serviceaccount:prod:deployer', audiences: ['kubernetes.default.svc'], pod: 'deployer-abc' },
      legacy: { user: 'system:serviceaccount:prod:deployer', audiences: ['unit'] },
    });
    writeFileSync(join(tmp.path, 'token'), 'auth-service-sa-token\n');
    t = await testContext({}, { apiServer: api.url, tokenPath: join(tmp.path, 'token') });
    pub = (await generateKeys('ec-p256')).publicKeyPem;
    await t.admin.create({ kind: 'role', metadata: { name: 'k' }, spec: {} }, false, 'admin');
    await t.admin.create({ kind: 'bot', metadata: { name: 'k' }, spec: { roles: ['k'] } }, false, 'admin');
    await t.admin.create({ kind: 'token', metadata: { name: 'k8s' }, spec: { join_method: 'kubernetes', bot_name: 'k', kubernetes: { type: 'in_cluster' }, allow: [{ service_account: 'prod:deployer' }] } }, false, 'admin');
  });
  after(async () => {
    await api?.close();
    tmp.cleanup();
  });

  it('an authenticated, pod-bound token of an allowed account joins once', async () => {
    const id = await join_('k8s', 'good');
    assert.equal(id.bot_name, 'k');
    await assert.rejects(join_('k8s', 'good'), (e) => isMwiError(e, 'JOIN_DENIED') && /already used/.test(e.message));
  });

  it('unauthenticated, wrong audience, other account and unbound tokens are refused', async () => {
    await assert.rejects(join_('k8s', 'forged'), /Kubernetes did not authenticate the token/);
    await assert.rejects(join_('k8s', 'wrong-aud'), /Kubernetes did not authenticate the token/);
    await assert.rejects(join_('k8s', 'other'), /matches none of the token's allow rules/);
    await assert.rejects(join_('k8s', 'legacy'), /only projected \(pod-bound\) service account tokens/);
  });

  it('the Auth Service authenticates to the API server; a wrong credential is refused, not accepted', async () => {
    writeFileSync(join(tmp.path, 'bad'), 'not-the-token');
    const bad = await testContext({}, { apiServer: api.url, tokenPath: join(tmp.path, 'bad') });
    await bad.admin.create({ kind: 'role', metadata: { name: 'k' }, spec: {} }, false, 'admin');
    await bad.admin.create({ kind: 'bot', metadata: { name: 'k' }, spec: { roles: ['k'] } }, false, 'admin');
    await bad.admin.create({ kind: 'token', metadata: { name: 'k8s' }, spec: { join_method: 'kubernetes', bot_name: 'k', allow: [{ service_account: 'prod:deployer' }] } }, false, 'admin');
    await assert.rejects(handleJoin(bad.ctx, { token: 'k8s', join_method: 'kubernetes', public_key: pub, payload: { id_token: 'good' } }, '-'), /could not review the token/);
  });
});
