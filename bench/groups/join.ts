// Joins: token, bound_keypair and github at every concurrency level, token joins with many
// locks in force, and a burst of joins from separate load generator processes.
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { cpus } from 'node:os';
import { CompactSign } from 'jose';
import { PATHS } from '../../src/api/wire.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { sshAuthorizedKey } from '../../src/crypto/ssh.js';
import { cryptoBound, OPS } from '../crypto.js';
import { createResource, hostCA, joinClient, tokenJoin, tokens } from '../fixtures.js';
import { burst } from '../loadgen.js';
import { levels, load, loadRow, perLevel, type LoadBench, type Prepared } from '../measure.js';
import { drive } from '../stats.js';

export async function tokenJoins(b: LoadBench): Promise<void> {
  const { c, keys } = b;
  await levels(b, c, 'join token', cryptoBound(b.rates, OPS.token), async (n) => {
    const toks = await tokens(c, n);
    const api = joinClient(c);
    return {
      task: async (i) => void (await tokenJoin(api, toks[i]!, keys[i % keys.length]!)),
      close: () => api.close(),
    };
  });
}

export async function boundKeypairJoins(b: LoadBench): Promise<void> {
  const { c, keys } = b;
  const bk = await generateKeys('ed25519');
  const bkPriv = createPrivateKey(bk.privateKeyPem);
  const pub = sshAuthorizedKey(createPublicKey(bk.publicKeyPem));
  const prepare = async (n: number): Promise<Prepared> => {
    const toks = await tokens(c, n, 'bound_keypair', { bound_keypair: { onboarding: { initial_public_key: pub } } });
    const api = joinClient(c);
    return {
      task: async (i) => {
        const token = toks[i];
        const challenge = { token, join_method: 'bound_keypair', payload: { public_keys: [pub] } };
        const ch = await api.call<{ challenge_id: string; claims: string }>('POST', PATHS.challenge, challenge);
        const signed = new CompactSign(Buffer.from(ch.claims)).setProtectedHeader({ alg: 'EdDSA' });
        const payload = { challenge_id: ch.challenge_id, signature: await signed.sign(bkPriv) };
        const publicKey = keys[i % keys.length]!.publicKeyPem;
        await api.call('POST', PATHS.join, { token, join_method: 'bound_keypair', public_key: publicKey, payload });
      },
      close: () => api.close(),
    };
  };
  await levels(b, c, 'join bound_keypair', cryptoBound(b.rates, OPS.bound_keypair), prepare, '2 requests/join');
}

/** `github` joins: the bench process plays the issuer (keys served over loopback, tokens signed here). */
export async function githubJoins(b: LoadBench): Promise<void> {
  const { c, keys, issuer } = b;
  const spec = { join_method: 'github', bot_name: 'bench', allow: [{ repository: 'octo/app' }] };
  await createResource(c, { kind: 'token', metadata: { name: 'gh' }, spec });
  let batch = 0;
  await levels(b, c, 'join github (RS256 JWT)', cryptoBound(b.rates, OPS.github), async (n) => {
    const at = batch++;
    const claims = { sub: 'repo:octo/app:ref:refs/heads/main', repository: 'octo/app', aud: 'bench' };
    const jwts = await Promise.all(Array.from({ length: n }, (_, i) => issuer.sign({ ...claims, jti: `${at}-${i}` })));
    const api = joinClient(c);
    return {
      task: async (i) => {
        const publicKey = keys[i % keys.length]!.publicKeyPem;
        const payload = { id_token: jwts[i] };
        await api.call('POST', PATHS.join, { token: 'gh', join_method: 'github', public_key: publicKey, payload });
      },
      close: () => api.close(),
    };
  });
}

/** Token joins with 10,000 locks in force (on other instances): locks are found by target, not scanned. */
export async function joinsWithLocks(b: LoadBench): Promise<void> {
  const { c, keys } = b;
  const count = b.quick ? 1000 : 10_000;
  const made = await drive(count, 32, async (i) => {
    const target = { bot_instance_id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}` };
    const spec = { target, message: 'bench' };
    await createResource(c, { kind: 'lock', version: 'v2', metadata: { name: `bench-${i}` }, spec });
  });
  if (made.errors) throw new Error(`creating ${count} locks: ${made.errors} failed, the first: ${made.firstError}`);
  const conc = 64;
  const n = perLevel(b, conc);
  const toks = await tokens(c, n);
  const api = joinClient(c);
  const r = await load(c, n, conc, async (i) => void (await tokenJoin(api, toks[i]!, keys[i % keys.length]!)));
  api.close();
  b.rows.push(loadRow(`join token with ${count} locks in force`, conc, r, cryptoBound(b.rates, OPS.token)));
}

export async function burstJoins(b: LoadBench): Promise<void> {
  const { c, keys } = b;
  const n = b.quick ? 200 : 1000;
  const toks = await tokens(c, n);
  // 1,000 tbots starting at once, each with its own connection, from one load generator process
  // per core (separate from the Auth Service, as the CI jobs would be)
  const procs = cpus().length;
  const jobs = toks.map((token, i) => ({ token, publicKeyPem: keys[i % keys.length]!.publicKeyPem }));
  const r = await burst(c.addr, hostCA(c), jobs, procs);
  b.rows.push({
    bench: `burst: ${n} joins at once, new connection each (${procs} load generator processes)`,
    concurrency: n,
    n: n - r.failed,
    rate: ((n - r.failed) / r.wallMs) * 1000,
    p50: NaN,
    p99: r.wallMs,
    note: `all done in ${(r.wallMs / 1000).toFixed(2)} s${r.failed ? `; ${r.failed} failed: ${r.firstError}` : ''}`,
  });
}
