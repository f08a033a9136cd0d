import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { handleJoin } from '../../src/auth/join.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { isMwiError } from '../../src/errors.js';
import { GITHUB_ISSUER } from '../../src/join/github/wire.js';
import { addGithubBot, testContext } from '../helpers/auth-context.js';
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';

/**
 * Finding 3: the replay marker was keyed on the raw token text while the JWS decoder forgives
 * whitespace, padding and spare bits, so one issuer-signed token could be replayed in many
 * spellings, each making a new bot instance. Every spelling below still carries a valid
 * signature over the same `header.payload`.
 */

const CLAIMS = {
  sub: 'repo:octo/app:ref:refs/heads/main',
  repository: 'octo/app',
  repository_owner: 'octo',
  ref: 'refs/heads/main',
  aud: 'unit',
};
const B64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** Order of the P-256 group. */
const P256_N = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');

const segments = (jwt: string) => jwt.split('.') as [string, string, string];

/** Sets a spare (unused) low bit of the last character of the signature: same bytes decoded. */
function flipSpareBit(jwt: string): string {
  const [h, p, s] = segments(jwt);
  const spare = [0, 0, 4, 2][s.length % 4]!; // unused bits in the last char: 2 chars → 4 bits, 3 chars → 2 bits
  assert.ok(spare > 0, 'the signature has spare bits');
  const last = B64URL.indexOf(s.at(-1)!);
  const changed = `${s.slice(0, -1)}${B64URL[last ^ 1]}`;
  assert.deepEqual(
    Buffer.from(changed, 'base64url'),
    Buffer.from(s, 'base64url'),
    'node decodes both spellings to the same bytes',
  );
  return `${h}.${p}.${changed}`;
}

/** ECDSA malleability: (r, s) and (r, n − s) both verify. */
function negateS(jwt: string): string {
  const [h, p, sig] = segments(jwt);
  const raw = Buffer.from(sig, 'base64url');
  assert.equal(raw.length, 64);
  const s = BigInt(`0x${raw.subarray(32).toString('hex')}`);
  const ns = Buffer.from((P256_N - s).toString(16).padStart(64, '0'), 'hex');
  return `${h}.${p}.${Buffer.concat([raw.subarray(0, 32), ns]).toString('base64url')}`;
}

describe('finding 3: a platform token joins once, whatever spelling of its signature is replayed', () => {
  let t: Awaited<ReturnType<typeof testContext>>;
  let rs: TestIssuer;
  let es: TestIssuer;
  let pub: string;
  const instances = async () => (await t.ctx.backend.range('/bot_instances/')).length;
  const join = (name: string, idToken: string) =>
    handleJoin(
      t.ctx,
      { token: name, join_method: 'github', public_key: pub, payload: { id_token: idToken } },
      '127.0.0.1',
    );

  before(async () => {
    rs = await startIssuer({ issuer: GITHUB_ISSUER });
    es = await startIssuer({ issuer: 'https://ghes.example.com/_services/token', alg: 'ES256' });
    t = await testContext({
      endpointOverrides: { [GITHUB_ISSUER]: rs.url, 'https://ghes.example.com/_services/token': es.url },
    });
    pub = (await generateKeys('ec-p256')).publicKeyPem;
    await addGithubBot(t.admin, { gh: undefined, ghes: { enterprise_server_host: 'ghes.example.com' } });
  });
  after(async () => {
    await rs?.close();
    await es?.close();
  });

  const replays: Array<[string, 'gh' | 'ghes', (jwt: string) => string]> = [
    ['(a) a space inserted in the signature', 'gh', (jwt) => `${jwt.slice(0, -10)} ${jwt.slice(-10)}`],
    ['(a) a newline inserted in the signature', 'gh', (jwt) => `${jwt.slice(0, -10)}\n${jwt.slice(-10)}`],
    ['(a) padding appended to the signature', 'gh', (jwt) => `${jwt}==`],
    ['(b) a changed spare bit in the last character (ES256)', 'ghes', flipSpareBit],
    ['(c) ECDSA s -> n-s (ES256)', 'ghes', negateS],
    ['(d) RS256 spare bits', 'gh', flipSpareBit],
  ];

  it('finding 3: each malleated replay of a joined token is refused; exactly one instance per token', async () => {
    const tokens = {
      gh: await rs.sign({ ...CLAIMS, jti: 'f03-rs' }),
      ghes: await es.sign({ ...CLAIMS, jti: 'f03-es' }),
    };
    await join('gh', tokens.gh);
    await join('ghes', tokens.ghes);
    assert.equal(await instances(), 2);
    const accepted: string[] = [];
    for (const [what, name, malleate] of replays) {
      const replay = malleate(tokens[name]);
      assert.notEqual(replay, tokens[name]);
      try {
        await join(name, replay);
        accepted.push(what);
      } catch (err) {
        assert.ok(isMwiError(err, 'JOIN_DENIED'), `${what}: ${String(err)}`);
      }
    }
    assert.deepEqual(accepted, [], `replays that joined again: ${accepted.join('; ')}`);
    assert.equal(await instances(), 2, 'one bot instance per issuer-signed token');
  });

  it('finding 3: a malleated spelling used first still makes the original a replay', async () => {
    const jwt = await es.sign({ ...CLAIMS, jti: 'f03-first' });
    const before = await instances();
    // the high-s twin is a canonical JWS the issuer's key verifies: it joins, and uses up the token
    await join('ghes', negateS(jwt));
    await assert.rejects(join('ghes', jwt), (e) => isMwiError(e, 'JOIN_DENIED') && /already used/.test(e.message));
    assert.equal((await instances()) - before, 1);
  });
});
