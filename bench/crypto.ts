import { createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import { generateKeys } from '../src/crypto/keys.js';
import { createCA, issueCertificate, loadCA } from '../src/crypto/x509.js';

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
  const asyncSign = (alg: string | null, key: typeof ec.privateKey) => new Promise((r, j) => sign(alg, data, key, (e, s) => (e ? j(e) : r(s))));
  const asyncVerify = (alg: string | null, key: typeof ec.publicKey, sig: Buffer) => new Promise((r, j) => verify(alg, data, key, sig, (e, ok) => (e ? j(e) : r(ok))));
  await measure('ecdsa_p256_sign', () => asyncSign('sha256', ec.privateKey));
  await measure('ecdsa_p256_verify', () => asyncVerify('sha256', ec.publicKey, ecSig));
  await measure('ed25519_sign', () => asyncSign(null, ed.privateKey));
  await measure('ed25519_verify', () => asyncVerify(null, ed.publicKey, edSig));
  await measure('ecdsa_p256_keygen', () => generateKeys('ec-p256'));
  const ca = await loadCA(await createCA('bench', 'bench CA'));
  const pub = createPublicKey((await generateKeys('ec-p256')).publicKeyPem).export({ type: 'spki', format: 'der' });
  await measure('x509_issue (mwi: DER template + node:crypto sign)', () => issueCertificate({ ca, publicKey: pub, commonName: 'bench', ttlMs: 3600_000, usage: 'client', identity: { kind: 'bot' } }));
  return out;
}
