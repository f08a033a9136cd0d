import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { createLocalJWKSet } from 'jose';
import { handleJoin } from '../../src/auth/join.js';
import { assertCanonicalCompactJws } from '../../src/crypto/jws.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { isMwiError } from '../../src/errors.js';
import { GITHUB_ISSUER } from '../../src/join/github/wire.js';
import { verifyPlatformJwt } from '../../src/join/jwt/verify.js';
import { JoinRefusal } from '../../src/join/types.js';
import { testContext } from '../helpers/auth-context.js';
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';

/**
 * Property-based tests for the JWS/JWT path: the canonical check agrees with an independent
 * definition, throws nothing but its refusal, and no mutation of a valid token other than the
 * identical text verifies or joins.
 */

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const CLAIMS = { sub: 'repo:octo/app:ref:refs/heads/main', repository: 'octo/app', aud: 'unit' };
const RUNS = 300;

/** RFC 4648 §3.5/§5 canonical unpadded base64url, defined arithmetically (not by re-encoding). */
function canonicalSegment(seg: string): boolean {
  if (seg.length === 0 || seg.length % 4 === 1) return false;
  if (![...seg].every((c) => ALPHABET.includes(c))) return false;
  const spareBits = [0, 0, 4, 2][seg.length % 4]!;
  return (ALPHABET.indexOf(seg.at(-1)!) & ((1 << spareBits) - 1)) === 0;
}
const oracle = (text: string) =>
  text.length <= 16_384 && text.split('.').length === 3 && text.split('.').every(canonicalSegment);

/** Strings made mostly of JWS-ish characters, so that the interesting cases are reached. */
const jwsLike = fc
  .array(
    fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom(...ALPHABET) },
      { weight: 2, arbitrary: fc.constantFrom('.', '=', ' ', '\n', '\t', '+', '/', '\u00a0', '\u0000', 'é') },
    ),
    { maxLength: 40 },
  )
  .map((cs) => cs.join(''));

/** One edit of a token's text. */
type Mutation = (jwt: string) => string;
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  // replace, insert or delete one character
  fc.tuple(fc.nat(), fc.constantFrom(...ALPHABET, '.', '=', ' ', '\n', '+', '/')).map(([i, c]): Mutation => (s) => {
    const k = i % Math.max(s.length, 1);
    return s.slice(0, k) + c + s.slice(k + 1);
  }),
  fc
    .tuple(fc.nat(), fc.constantFrom(...ALPHABET, '.', '=', ' ', '\n', '\r', '\t', '+', '/'))
    .map(([i, c]): Mutation => (s) => {
      const k = i % (s.length + 1);
      return s.slice(0, k) + c + s.slice(k);
    }),
  fc.nat().map((i): Mutation => (s) => {
    const k = i % Math.max(s.length, 1);
    return s.slice(0, k) + s.slice(k + 1);
  }),
  // flip one bit of one decoded byte, then re-encode the segment
  fc.tuple(fc.nat(2), fc.nat(), fc.nat(7)).map(([seg, i, bit]): Mutation => (s) => {
    const parts = s.split('.');
    if (!parts[seg]) return s; // earlier edits may have removed the segment
    const bytes = Buffer.from(parts[seg], 'base64url');
    if (bytes.length === 0) return s;
    bytes[i % bytes.length]! ^= 1 << bit;
    parts[seg] = bytes.toString('base64url');
    return parts.join('.');
  }),
  // the same bytes spelled differently: spare bits of a last character, padding, standard alphabet
  fc.tuple(fc.nat(2), fc.integer({ min: 1, max: 15 })).map(([seg, bits]): Mutation => (s) => {
    const parts = s.split('.');
    const p = parts[seg];
    if (!p) return s;
    parts[seg] =
      p.slice(0, -1) + ALPHABET[ALPHABET.indexOf(p.at(-1)!) ^ (bits & ((1 << [0, 0, 4, 2][p.length % 4]!) - 1))];
    return parts.join('.');
  }),
  fc.nat(2).map((seg): Mutation => (s) => {
    const parts = s.split('.');
    if (parts[seg] === undefined) return s;
    parts[seg] = `${parts[seg]}${'='.repeat((4 - (parts[seg].length % 4)) % 4 || 4)}`;
    return parts.join('.');
  }),
  fc.nat(2).map((seg): Mutation => (s) => {
    const parts = s.split('.');
    if (parts[seg] === undefined) return s;
    parts[seg] = Buffer.from(parts[seg], 'base64url').toString('base64');
    return parts.join('.');
  }),
  // segments swapped, dropped or repeated; whitespace around
  fc
    .constantFrom<[number, number, number]>([1, 0, 2], [0, 2, 1], [2, 1, 0], [0, 1, 1], [0, 0, 2])
    .map((order): Mutation => (s) => {
      const p = s.split('.');
      return order.map((i) => p[i]).join('.');
    }),
  fc.constantFrom<Mutation>(
    (s) => `${s}.`,
    (s) => `.${s}`,
    (s) => `${s} `,
    (s) => ` ${s}`,
    (s) => `${s}\n`,
    (s) => s.split('.').slice(0, 2).join('.'),
    (s) => `${s}.${s.split('.')[2]}`,
  ),
);

describe('property: the JWS/JWT path accepts only the identical token', () => {
  let rs: TestIssuer;
  let es: TestIssuer;
  let t: Awaited<ReturnType<typeof testContext>>;
  let pub: string;

  before(async () => {
    rs = await startIssuer({ issuer: GITHUB_ISSUER });
    es = await startIssuer({ issuer: 'https://ghes.example.com/_services/token', alg: 'ES256' });
    t = await testContext({ endpointOverrides: { [GITHUB_ISSUER]: rs.url } });
    pub = (await generateKeys('ec-p256')).publicKeyPem;
    await t.admin.create({ kind: 'role', metadata: { name: 'ci' }, spec: {} }, false, 'admin');
    await t.admin.create({ kind: 'bot', metadata: { name: 'ci' }, spec: { roles: ['ci'] } }, false, 'admin');
    await t.admin.create(
      {
        kind: 'token',
        metadata: { name: 'gh' },
        spec: { join_method: 'github', bot_name: 'ci', allow: [{ repository: 'octo/app' }] },
      },
      false,
      'admin',
    );
  });
  after(async () => {
    await rs?.close();
    await es?.close();
  });

  it('the canonical check agrees with an independent definition of canonical base64url', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          jwsLike,
          fc.tuple(jwsLike, jwsLike, jwsLike).map((p) => p.join('.')),
          fc.string({ unit: 'grapheme', maxLength: 60 }),
        ),
        (text) => {
          let accepted = true;
          try {
            assertCanonicalCompactJws(text);
          } catch {
            accepted = false;
          }
          assert.equal(accepted, oracle(text), JSON.stringify(text));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('the canonical check throws nothing but its refusal, whatever it is given', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.anything(),
          jwsLike,
          fc.string({ unit: 'binary', maxLength: 80 }),
          fc.string({ maxLength: 20_000, minLength: 16_380 }),
        ),
        (input) => {
          try {
            assertCanonicalCompactJws(input, 'id_token');
          } catch (err) {
            assert.ok(isMwiError(err, 'BAD_REQUEST') && err.field === 'id_token', String(err));
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('any three byte strings encode to a canonical JWS that decodes to them', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
        fc.uint8Array({ minLength: 1, maxLength: 64 }),
        (h, p, s) => {
          const text = [h, p, s].map((b) => Buffer.from(b).toString('base64url')).join('.');
          const jws = assertCanonicalCompactJws(text);
          assert.deepEqual(
            [jws.header, jws.payload, jws.signature].map((b) => new Uint8Array(b)),
            [h, p, s],
          );
          assert.equal(jws.signingInput, text.split('.').slice(0, 2).join('.'));
        },
      ),
    );
  });

  for (const alg of ['RS256', 'ES256'] as const) {
    it(`no mutation of a valid ${alg} token verifies unless it is the identical text`, async () => {
      const issuer = alg === 'RS256' ? rs : es;
      const jwt = await issuer.sign(CLAIMS);
      const rules = {
        issuer: issuer.issuer,
        audience: 'unit',
        keys: createLocalJWKSet(JSON.parse(issuer.jwks())),
        now: Date.now(),
        maxLifetimeS: 3600,
      };
      await verifyPlatformJwt(jwt, rules); // the original verifies
      await fc.assert(
        fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 3 }), async (edits) => {
          const mutated = edits.reduce((s, m) => m(s), jwt);
          let verified = true;
          try {
            await verifyPlatformJwt(mutated, rules);
          } catch (err) {
            assert.ok(err instanceof JoinRefusal, String(err));
            verified = false;
          }
          assert.equal(verified, mutated === jwt, `accepted a mutation: ${JSON.stringify(mutated)}`);
        }),
        { numRuns: RUNS },
      );
    });
  }

  it('after a token joined once, no mutation of it joins (one bot instance)', async () => {
    const jwt = await rs.sign({ ...CLAIMS, jti: 'prop' });
    const before = (await t.ctx.backend.range('/bot_instances/')).length;
    await handleJoin(t.ctx, { token: 'gh', join_method: 'github', public_key: pub, payload: { id_token: jwt } }, '-');
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 3 }), async (edits) => {
        const mutated = edits.reduce((s, m) => m(s), jwt);
        await assert.rejects(
          handleJoin(
            t.ctx,
            { token: 'gh', join_method: 'github', public_key: pub, payload: { id_token: mutated } },
            '-',
          ),
          (e) => isMwiError(e, 'JOIN_DENIED'),
        );
      }),
      { numRuns: RUNS },
    );
    assert.equal((await t.ctx.backend.range('/bot_instances/')).length - before, 1);
  });
});
