import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { before, describe, it } from 'node:test';
import { handleJoin } from '../../src/auth/join.js';
import { parseClientKey } from '../../src/crypto/keys.js';
import { sshPublicKeyToKeyObject } from '../../src/crypto/ssh.js';
import { isMwiError } from '../../src/errors.js';
import { testContext } from '../helpers/auth-context.js';

const P256_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex');
const ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const pem = (spki: Buffer) => `-----BEGIN PUBLIC KEY-----\n${spki.toString('base64')}\n-----END PUBLIC KEY-----\n`;
const sshString = (b: Buffer | string) => {
  const v = Buffer.from(b);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(v.length);
  return Buffer.concat([len, v]);
};
const sshEd25519 = (raw: Buffer) =>
  `ssh-ed25519 ${Buffer.concat([sshString('ssh-ed25519'), sshString(raw)]).toString('base64')}`;
const sshP256 = (q: Buffer) =>
  `ecdsa-sha2-nistp256 ` +
  `${Buffer.concat([sshString('ecdsa-sha2-nistp256'), sshString('nistp256'), sshString(q)]).toString('base64')}`;

const validP256 = () =>
  generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
    .publicKey.export({ type: 'spki', format: 'der' })
    .subarray(P256_PREFIX.length);
const validEd25519 = () =>
  generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }).subarray(ED25519_PREFIX.length);

const P = Buffer.from('ffffffff00000001000000000000000000000000ffffffffffffffffffffffff', 'hex');
/** P-256 encodings that are no point of the curve. */
function badP256(): Array<[string, Buffer]> {
  const offCurve = Buffer.from(validP256());
  offCurve[64] = offCurve[64]! ^ 1;
  const xIsP = Buffer.concat([Buffer.from([4]), P, validP256().subarray(33)]);
  const yIsP = Buffer.concat([validP256().subarray(0, 33), P]);
  return [
    ['off the curve', offCurve],
    ['all-zero (0, 0)', Buffer.concat([Buffer.from([4]), Buffer.alloc(64)])],
    ['x = p', xIsP],
    ['y = p', yIsP],
    ['all-ones', Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 0xff)])],
  ];
}

/** Ed25519 keys of small order, with either sign bit, and non-canonical encodings of y >= p. */
function badEd25519(): Array<[string, Buffer]> {
  const le = (hex: string) => Buffer.from(hex, 'hex');
  const ys: Array<[string, Buffer]> = [
    ['y=0 (order 4, the all-zero key)', le('00'.repeat(32))],
    ['y=1 (identity)', le(`01${'00'.repeat(31)}`)],
    ['y=p-1 (order 2)', le(`ec${'ff'.repeat(30)}7f`)],
    ['order 8 (a)', le('26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05')],
    ['order 8 (b)', le('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a')],
    ['y=p (non-canonical 0)', le(`ed${'ff'.repeat(30)}7f`)],
    ['y=p+1 (non-canonical 1)', le(`ee${'ff'.repeat(30)}7f`)],
    ['y=2^255-1', le(`${'ff'.repeat(31)}7f`)],
  ];
  return ys.flatMap(([name, y]) => {
    const negative = Buffer.from(y);
    negative[31] = negative[31]! | 0x80;
    return [
      [name, y],
      [`${name}, sign bit set`, negative],
    ] as Array<[string, Buffer]>;
  });
}

const badRequest = (e: unknown) => isMwiError(e, 'BAD_REQUEST') && e.field === 'public_key';

describe('invalid public keys are refused where they arrive', () => {
  it('parseClientKey refuses P-256 points off the curve or with non-canonical coordinates', () => {
    for (const [name, q] of badP256())
      assert.throws(() => parseClientKey(pem(Buffer.concat([P256_PREFIX, q])), 'public_key'), badRequest, name);
  });

  it('parseClientKey refuses small-order and non-canonical Ed25519 keys', () => {
    for (const [name, raw] of badEd25519())
      assert.throws(() => parseClientKey(pem(Buffer.concat([ED25519_PREFIX, raw])), 'public_key'), badRequest, name);
  });

  it('sshPublicKeyToKeyObject (bound keypair keys) refuses the same keys', () => {
    for (const [name, q] of badP256())
      assert.throws(() => sshPublicKeyToKeyObject(sshP256(q), 'public_key'), badRequest, name);
    for (const [name, raw] of badEd25519())
      assert.throws(() => sshPublicKeyToKeyObject(sshEd25519(raw), 'public_key'), badRequest, name);
  });

  it('real keys are still accepted by both parsers', () => {
    for (let i = 0; i < 50; i++) {
      const q = validP256();
      const raw = validEd25519();
      assert.equal(parseClientKey(pem(Buffer.concat([P256_PREFIX, q])), 'public_key').type, 'ec-p256');
      assert.equal(parseClientKey(pem(Buffer.concat([ED25519_PREFIX, raw])), 'public_key').type, 'ed25519');
      assert.equal(sshPublicKeyToKeyObject(sshP256(q), 'public_key').asymmetricKeyType, 'ec');
      assert.equal(sshPublicKeyToKeyObject(sshEd25519(raw), 'public_key').asymmetricKeyType, 'ed25519');
    }
  });

  it('a compressed or hybrid P-256 point is certified in its uncompressed form; a hybrid one with the wrong parity is refused', () => {
    for (let i = 0; i < 20; i++) {
      const q = validP256();
      const odd = (q[64]! & 1) === 1;
      const compressed = Buffer.concat([Buffer.from([odd ? 3 : 2]), q.subarray(1, 33)]);
      const p256c = Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex');
      for (const spki of [
        Buffer.concat([p256c, compressed]),
        Buffer.concat([P256_PREFIX, Buffer.from([odd ? 7 : 6]), q.subarray(1)]),
      ]) {
        const key = parseClientKey(pem(spki), 'public_key');
        assert.equal(key.type, 'ec-p256');
        assert.deepEqual(key.raw, q);
        assert.deepEqual(key.spki, Buffer.concat([P256_PREFIX, q]));
      }
      const wrongParity = Buffer.concat([P256_PREFIX, Buffer.from([odd ? 6 : 7]), q.subarray(1)]);
      assert.throws(() => parseClientKey(pem(wrongParity), 'public_key'), badRequest);
    }
  });

  describe('at join', () => {
    let t: Awaited<ReturnType<typeof testContext>>;
    before(async () => {
      t = await testContext();
      await t.admin.create(
        { kind: 'role', metadata: { name: 'dev' }, spec: { allow: { logins: ['deploy'] } } },
        false,
        'admin',
      );
      await t.admin.addBot({ name: 'robot', roles: ['dev'] }, 'admin');
    });

    it('a join with an invalid key is a bad request naming public_key, and the token stays unused', async () => {
      const { token } = await t.admin.addToken({ bot_name: 'robot', join_method: 'token', ttl: '30m' }, 'admin');
      const bad = [
        ...badP256().map(([n, q]) => [n, Buffer.concat([P256_PREFIX, q])] as const),
        ...badEd25519().map(([n, r]) => [n, Buffer.concat([ED25519_PREFIX, r])] as const),
      ];
      for (const [name, spki] of bad) {
        await assert.rejects(
          handleJoin(t.ctx, { token, join_method: 'token', public_key: pem(spki) }, '127.0.0.1'),
          badRequest,
          name,
        );
      }
      const id = await handleJoin(
        t.ctx,
        { token, join_method: 'token', public_key: pem(Buffer.concat([P256_PREFIX, validP256()])) },
        '127.0.0.1',
      );
      assert.equal(id.generation, 1);
    });
  });
});
