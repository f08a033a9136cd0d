import {
  createPublicKey,
  diffieHellman,
  generateKeyPair,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import { generateKeys } from '../src/crypto/keys.js';
import { createCA, issueCertificate, loadCA } from '../src/crypto/x509.js';

/** The crypto operations one benchmark operation performs, on both sides (they share the cores). */
export type CryptoOps = Partial<
  Record<
    'ecdsa_p256_sign' | 'ecdsa_p256_verify' | 'ed25519_sign' | 'ed25519_verify' | 'rsa2048_verify' | 'x25519_exchange',
    number
  >
>;

/**
 * The crypto each benchmark operation does, both sides together (they share the cores). Joins
 * and kept-alive renewals run over open connections; a new connection adds a TLS 1.3 handshake
 * with client certificates: each side signs once (CertificateVerify), verifies the peer's
 * certificate (one CA signature) and its CertificateVerify, and does one X25519 exchange.
 */
const HANDSHAKE = { ecdsa_p256_sign: 2, ecdsa_p256_verify: 4, x25519_exchange: 2 };
export const OPS = {
  // the certificate
  token: { ecdsa_p256_sign: 1 },
  // the certificate and the join state (ES256); tbot signs the challenge (EdDSA), the server verifies it
  bound_keypair: { ecdsa_p256_sign: 2, ed25519_sign: 1, ed25519_verify: 1 },
  // the certificate; the RS256 ID token is verified (the issuer signed it before the clock started)
  github: { ecdsa_p256_sign: 1, rsa2048_verify: 1 },
  // the certificate; SigV4 (signed by tbot, checked by STS) and the challenge are HMACs, not counted
  iam: { ecdsa_p256_sign: 1 },
  // the certificate; the instance identity document's RSA-2048 signature (AWS signed it beforehand)
  ec2: { ecdsa_p256_sign: 1, rsa2048_verify: 1 },
  renewKept: { ecdsa_p256_sign: 1 },
  handshake: HANDSHAKE,
  renewNew: { ...HANDSHAKE, ecdsa_p256_sign: HANDSHAKE.ecdsa_p256_sign + 1 },
  // + the output's X.509 certificate (ECDSA) and OpenSSH certificate (Ed25519)
  cycle: { ...HANDSHAKE, ecdsa_p256_sign: HANDSHAKE.ecdsa_p256_sign + 2, ed25519_sign: 1 },
} satisfies Record<string, CryptoOps>;

/**
 * The rate the machine could sustain doing nothing but `ops` for each operation: the bound a
 * join or renewal figure is compared with. Rates are per second over all cores.
 */
export function cryptoBound(rates: Record<string, number>, ops: CryptoOps): number {
  let seconds = 0;
  for (const [op, count] of Object.entries(ops)) seconds += count / rates[op]!;
  return 1 / seconds;
}

/** Raw crypto rates on this machine with this Node.js: the bound the join/renew figures are measured against. */
export async function cryptoRates(seconds = 1.5): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const measure = async (name: string, op: () => Promise<unknown>, parallel = 8) => {
    const end = performance.now() + seconds * 1000;
    let n = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: parallel }, async () => {
        while (performance.now() < end) {
          await op();
          n++;
        }
      }),
    );
    out[name] = (n / (performance.now() - t0)) * 1000;
  };
  const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const ed = generateKeyPairSync('ed25519');
  const data = Buffer.alloc(512, 7);
  const ecSig = sign('sha256', data, ec.privateKey);
  const edSig = sign(null, data, ed.privateKey);
  const asyncSign = (alg: string | null, key: typeof ec.privateKey) =>
    new Promise((r, j) => sign(alg, data, key, (e, s) => (e ? j(e) : r(s))));
  const asyncVerify = (alg: string | null, key: typeof ec.publicKey, sig: Buffer) =>
    new Promise((r, j) => verify(alg, data, key, sig, (e, ok) => (e ? j(e) : r(ok))));
  await measure('ecdsa_p256_sign', () => asyncSign('sha256', ec.privateKey));
  await measure('ecdsa_p256_verify', () => asyncVerify('sha256', ec.publicKey, ecSig));
  await measure('ed25519_sign', () => asyncSign(null, ed.privateKey));
  await measure('ed25519_verify', () => asyncVerify(null, ed.publicKey, edSig));
  await measure('ecdsa_p256_keygen', () => generateKeys('ec-p256'));
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rsaSig = sign('sha256', data, rsa.privateKey);
  await measure('rsa2048_verify', () => asyncVerify('sha256', rsa.publicKey, rsaSig));
  // one side of a TLS 1.3 key exchange: an ephemeral X25519 key and the shared secret
  const peer = generateKeyPairSync('x25519');
  await measure('x25519_exchange', async () => {
    const privateKey = await new Promise<KeyObject>((r, j) =>
      generateKeyPair('x25519', {}, (e, _pub, priv) => (e ? j(e) : r(priv))),
    );
    return diffieHellman({ privateKey, publicKey: peer.publicKey });
  });
  const ca = await loadCA(await createCA('bench', 'bench CA'));
  const pub = createPublicKey((await generateKeys('ec-p256')).publicKeyPem).export({ type: 'spki', format: 'der' });
  await measure('x509_issue (mwi: DER template + node:crypto sign)', () =>
    issueCertificate({
      ca,
      publicKey: pub,
      commonName: 'bench',
      ttlMs: 3600_000,
      usage: 'client',
      identity: { kind: 'bot' },
    }),
  );
  return out;
}
