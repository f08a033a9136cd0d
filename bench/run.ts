// `npm run bench`: joins, renewals, a burst, tbot wall time and memory, instance listing, and the
// machine's raw crypto rates measured in the same run. Prints one table; writes bench-results.json.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { CompactSign } from 'jose';
import { ApiClient } from '../src/api/client.js';
import { PATHS, type IdentityResponse } from '../src/api/wire.js';
import { generateKeys, type PemKeyPair } from '../src/crypto/keys.js';
import { sshAuthorizedKey } from '../src/crypto/ssh.js';
import { cryptoBound, cryptoRates, type CryptoOps } from './crypto.js';
import { CLI, processCpuMs, startAuth, type BenchCluster } from './cluster.js';
import { startTlsPeer } from './tls-peer.js';
import { burst } from './loadgen.js';
import { drive, pace, Pool, summarize } from './stats.js';
import { GITHUB_ISSUER } from '../src/join/github/wire.js';
import { startIssuer, type TestIssuer } from '../test/helpers/oidc-issuer.js';

const QUICK = process.argv.includes('--quick');
/** `--only=token,renew`: run only the named groups (token, bound_keypair, github, renew, renew-kept, cycle, tls, burst, tbot, locks, instances). */
const ONLY = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split(',');
const want = (group: string) => !ONLY || ONLY.includes(group);
const LEVELS = [1, 16, 64, 256];
const perLevel = (c: number) => (QUICK ? Math.max(50, c * 2) : c === 1 ? 300 : Math.max(1500, c * 8));
type Row = {
  bench: string;
  concurrency: number | string;
  n: number;
  rate: number;
  p50: number;
  p99: number;
  bound?: number;
  /** CPU time per operation in µs: the Auth Service's processes, and the load generator. */
  authUs?: number;
  genUs?: number;
  note?: string;
};
const rows: Row[] = [];
const extra: Record<string, unknown> = {};

async function setup(c: BenchCluster): Promise<void> {
  await c.admin.call('POST', '/v1/admin/resources', { resource: { kind: 'role', metadata: { name: 'bench' }, spec: { allow: { logins: ['bench'] } } } });
  await c.admin.call('POST', '/v1/admin/resources', { resource: { kind: 'bot', metadata: { name: 'bench' }, spec: { roles: ['bench'] } } });
}

async function tokens(c: BenchCluster, n: number, method = 'token', spec?: unknown): Promise<string[]> {
  const out: string[] = [];
  const r = await drive(n, 32, async () => {
    const t = await c.admin.call<{ token: string }>('POST', '/v1/admin/tokens', { bot_name: 'bench', join_method: method, ttl: '2h', ...(spec ? { spec } : {}) });
    out.push(t.token);
  });
  if (r.errors) throw new Error(`creating ${n} join tokens: ${r.errors} failed, the first with: ${r.firstError}`);
  return out;
}

/**
 * The crypto each benchmark operation does, both sides together (they share the cores). Joins
 * and kept-alive renewals run over open connections; a new connection adds a TLS 1.3 handshake
 * with client certificates: each side signs once (CertificateVerify), verifies the peer's
 * certificate (one CA signature) and its CertificateVerify, and does one X25519 exchange.
 */
const HANDSHAKE = { ecdsa_p256_sign: 2, ecdsa_p256_verify: 4, x25519_exchange: 2 };
const OPS = {
  // the certificate
  token: { ecdsa_p256_sign: 1 },
  // the certificate and the join state (ES256); tbot signs the challenge (EdDSA), the server verifies it
  bound_keypair: { ecdsa_p256_sign: 2, ed25519_sign: 1, ed25519_verify: 1 },
  // the certificate; the RS256 ID token is verified (the issuer signed it before the clock started)
  github: { ecdsa_p256_sign: 1, rsa2048_verify: 1 },
  renewKept: { ecdsa_p256_sign: 1 },
  handshake: HANDSHAKE,
  renewNew: { ...HANDSHAKE, ecdsa_p256_sign: HANDSHAKE.ecdsa_p256_sign + 1 },
  // + the output's X.509 certificate (ECDSA) and OpenSSH certificate (Ed25519)
  cycle: { ...HANDSHAKE, ecdsa_p256_sign: HANDSHAKE.ecdsa_p256_sign + 2, ed25519_sign: 1 },
} satisfies Record<string, CryptoOps>;

type Loaded = Awaited<ReturnType<typeof load>>;

function loadRow(bench: string, conc: number | string, r: Loaded, bound: number, note?: string): Row {
  const errors = r.errors ? `${r.errors} errors: ${r.firstError}` : '';
  const text = [note, errors].filter(Boolean).join('; ');
  return { bench, concurrency: conc, n: r.n, rate: r.rate, p50: r.p50, p99: r.p99, authUs: r.authUs, genUs: r.genUs, bound: r.rate / bound, ...(text ? { note: text } : {}) };
}

/** `drive` (or, with a rate, `pace`) plus the CPU both sides spent, per completed operation. */
async function load(c: Pick<BenchCluster, 'cpuMs'>, n: number, conc: number, task: (i: number) => Promise<void>, rate?: number) {
  const a0 = c.cpuMs();
  const g0 = process.cpuUsage();
  const r = rate ? await pace(n, rate, task) : await drive(n, conc, task);
  const g = process.cpuUsage(g0);
  const done = Math.max(1, r.samples.length);
  return { ...r, ...summarize(r.samples, r.wallMs), authUs: ((c.cpuMs() - a0) * 1000) / done, genUs: (g.user + g.system) / done };
}

/** A `token` join: what tbot sends, over the given client. */
function tokenJoin(api: ApiClient, token: string, key: PemKeyPair): Promise<IdentityResponse> {
  return api.call<IdentityResponse>('POST', PATHS.join, { token, join_method: 'token', public_key: key.publicKeyPem });
}

function hostCA(c: BenchCluster): string[] {
  return [c.caCerts[0]!];
}

/** What one benchmark runs: a task per operation (i = 0..n-1), and what to close afterwards. */
interface Prepared {
  task: (i: number) => Promise<void>;
  close?: () => void;
}

/**
 * A join/renew benchmark: closed loop at every concurrency level, then open loop at half the
 * best rate seen (latency from each request's scheduled start). `prepare` gets the operation
 * count and how many clients may be in flight at once.
 */
async function levels(c: Pick<BenchCluster, 'cpuMs'>, bench: string, bound: number, prepare: (n: number, clients: number) => Promise<Prepared>, note?: string): Promise<void> {
  let peak = 0;
  for (const conc of LEVELS) {
    const n = perLevel(conc);
    const { task, close } = await prepare(n, conc);
    const r = await load(c, n, conc, task);
    close?.();
    peak = Math.max(peak, r.rate);
    rows.push(loadRow(bench, conc, r, bound, note));
  }
  const rate = peak / 2;
  const n = Math.max(50, Math.round(rate * (QUICK ? 1 : 3)));
  const { task, close } = await prepare(n, 256);
  const r = await load(c, n, 0, task, rate);
  close?.();
  rows.push(loadRow(`${bench}: open loop at half the peak rate`, `${Math.round(rate)}/s`, r, bound, note));
}

async function benchTokenJoins(c: BenchCluster, keys: PemKeyPair[], rates: Record<string, number>): Promise<void> {
  await levels(c, 'join token', cryptoBound(rates, OPS.token), async (n) => {
    const toks = await tokens(c, n);
    const api = new ApiClient({ addrs: [c.addr], tls: { ca: hostCA(c) } });
    return {
      task: async (i) => void (await tokenJoin(api, toks[i]!, keys[i % keys.length]!)),
      close: () => api.close(),
    };
  });
}

async function benchBoundKeypairJoins(c: BenchCluster, keys: PemKeyPair[], rates: Record<string, number>): Promise<void> {
  const bk = await generateKeys('ed25519');
  const bkPriv = createPrivateKey(bk.privateKeyPem);
  const pub = sshAuthorizedKey(createPublicKey(bk.publicKeyPem));
  const prepare = async (n: number): Promise<Prepared> => {
    const toks = await tokens(c, n, 'bound_keypair', { bound_keypair: { onboarding: { initial_public_key: pub } } });
    const api = new ApiClient({ addrs: [c.addr], tls: { ca: hostCA(c) } });
    return {
      task: async (i) => {
        const ch = await api.call<{ challenge_id: string; claims: string }>('POST', PATHS.challenge, { token: toks[i], join_method: 'bound_keypair', payload: { public_keys: [pub] } });
        const signature = await new CompactSign(Buffer.from(ch.claims)).setProtectedHeader({ alg: 'EdDSA' }).sign(bkPriv);
        await api.call('POST', PATHS.join, { token: toks[i], join_method: 'bound_keypair', public_key: keys[i % keys.length]!.publicKeyPem, payload: { challenge_id: ch.challenge_id, signature } });
      },
      close: () => api.close(),
    };
  };
  await levels(c, 'join bound_keypair', cryptoBound(rates, OPS.bound_keypair), prepare, '2 requests/join');
}

/** `github` joins: the bench process plays the issuer (keys served over loopback, tokens signed here). */
async function benchGithubJoins(c: BenchCluster, keys: PemKeyPair[], rates: Record<string, number>, issuer: TestIssuer): Promise<void> {
  await c.admin.call('POST', '/v1/admin/resources', { resource: { kind: 'token', metadata: { name: 'gh' }, spec: { join_method: 'github', bot_name: 'bench', allow: [{ repository: 'octo/app' }] } } });
  let batch = 0;
  await levels(c, 'join github (RS256 JWT)', cryptoBound(rates, OPS.github), async (n) => {
    const b = batch++;
    const jwts = await Promise.all(Array.from({ length: n }, (_, i) => issuer.sign({ sub: 'repo:octo/app:ref:refs/heads/main', repository: 'octo/app', aud: 'bench', jti: `${b}-${i}` })));
    const api = new ApiClient({ addrs: [c.addr], tls: { ca: hostCA(c) } });
    return {
      task: async (i) => void (await api.call('POST', PATHS.join, { token: 'gh', join_method: 'github', public_key: keys[i % keys.length]!.publicKeyPem, payload: { id_token: jwts[i] } })),
      close: () => api.close(),
    };
  });
}

interface Renewer {
  key: PemKeyPair;
  id: IdentityResponse;
}

/** `count` bot identities, joined with tokens, in a pool: each is used by one renewal at a time. */
async function renewers(c: BenchCluster, keys: PemKeyPair[], count: number): Promise<Pool<Renewer>> {
  const toks = await tokens(c, count);
  const joinApi = new ApiClient({ addrs: [c.addr], tls: { ca: hostCA(c) } });
  try {
    return new Pool(await Promise.all(toks.map(async (t, i) => ({ key: keys[i % keys.length]!, id: await tokenJoin(joinApi, t, keys[i % keys.length]!) }))));
  } finally {
    joinApi.close();
  }
}

const tlsOf = (me: Renewer) => ({ ca: me.id.tls_ca_certs, cert: me.id.tls_cert, key: me.key.privateKeyPem });
/** After a renewal for `key`, the client's credentials are the answer's (as tbot rekeys). */
const rekeyTo = (key: PemKeyPair) => (a: IdentityResponse) => ({ ca: a.tls_ca_certs, cert: a.tls_cert, key: key.privateKeyPem });

/**
 * A fleet: every renewal opens a new mTLS connection with the current certificate. With
 * `output`, tbot's whole cycle: then an output's certificates on the same connection (which now
 * speaks as the new generation).
 */
async function renewOnNewConnection(c: BenchCluster, keys: PemKeyPair[], clients: number, output: boolean): Promise<Prepared> {
  const pool = await renewers(c, keys, clients);
  return {
    task: async (i) => {
      const me = await pool.take();
      const next = keys[(i * 7) % keys.length]!;
      const api = new ApiClient({ addrs: [c.addr], tls: tlsOf(me) });
      try {
        me.id = await api.call<IdentityResponse>('POST', PATHS.renew, { public_key: next.publicKeyPem }, output ? { rekey: rekeyTo(next) } : {});
        me.key = next;
        if (output) await api.call('POST', PATHS.certs, { public_key: keys[i % keys.length]!.publicKeyPem });
      } finally {
        api.close();
        pool.give(me);
      }
    },
  };
}

async function benchRenewals(c: BenchCluster, keys: PemKeyPair[], rates: Record<string, number>): Promise<void> {
  if (want('renew')) {
    await levels(c, 'renew, new mTLS connection each', cryptoBound(rates, OPS.renewNew), (_n, clients) => renewOnNewConnection(c, keys, clients, false));
  }
  if (want('cycle')) {
    await levels(c, 'tbot renewal cycle: new connection, renew + one output (TLS + SSH certs)', cryptoBound(rates, OPS.cycle), (_n, clients) =>
      renewOnNewConnection(c, keys, clients, true),
    );
  }
  // daemons renewing within the keep-alive window: each keeps its connection, which the Auth
  // Service carries forward to every new generation (as tbot does)
  if (want('renew-kept')) {
    await levels(c, 'renew, kept-alive connection (identity carried)', cryptoBound(rates, OPS.renewKept), async (_n, clients) => {
      const ids = await renewers(c, keys, clients);
      const apis = ids.all().map((me) => new ApiClient({ addrs: [c.addr], tls: tlsOf(me) }));
      // connections opened before the clock starts: this measures renewals, not handshakes
      await Promise.all(apis.map((api) => api.call('GET', PATHS.ping)));
      const pool = new Pool(apis);
      return {
        task: async (i) => {
          const api = await pool.take();
          const next = keys[(i * 7) % keys.length]!;
          try {
            await api.call<IdentityResponse>('POST', PATHS.renew, { public_key: next.publicKeyPem }, { rekey: rekeyTo(next) });
          } finally {
            pool.give(api);
          }
        },
        close: () => apis.forEach((api) => api.close()),
      };
    });
  }
}

/** The TLS ceiling: new mTLS connections to a bare HTTPS server that does nothing else. */
async function benchHandshakes(rates: Record<string, number>): Promise<void> {
  const peer = await startTlsPeer();
  try {
    await levels({ cpuMs: () => processCpuMs(peer.pid) }, 'bare TLS 1.3 mTLS handshake + empty answer (Node https server, no mwi code)', cryptoBound(rates, OPS.handshake), async () => ({
      task: async () => {
        const api = new ApiClient({ addrs: [peer.addr], tls: peer.client });
        try {
          await api.call('POST', PATHS.renew, {});
        } finally {
          api.close();
        }
      },
    }));
  } finally {
    peer.stop();
  }
}

/** Token joins with 10,000 locks in force (on other instances): locks are found by target, not scanned. */
async function benchWithLocks(c: BenchCluster, keys: PemKeyPair[], rates: Record<string, number>): Promise<void> {
  const count = QUICK ? 1000 : 10_000;
  const made = await drive(count, 32, async (i) => {
    await c.admin.call('POST', '/v1/admin/resources', { resource: { kind: 'lock', version: 'v2', metadata: { name: `bench-${i}` }, spec: { target: { bot_instance_id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}` }, message: 'bench' } } });
  });
  if (made.errors) throw new Error(`creating ${count} locks: ${made.errors} failed, the first with: ${made.firstError}`);
  const conc = 64;
  const n = perLevel(conc);
  const toks = await tokens(c, n);
  const api = new ApiClient({ addrs: [c.addr], tls: { ca: hostCA(c) } });
  const r = await load(c, n, conc, async (i) => void (await tokenJoin(api, toks[i]!, keys[i % keys.length]!)));
  api.close();
  rows.push(loadRow(`join token with ${count} locks in force`, conc, r, cryptoBound(rates, OPS.token)));
}

async function benchBurst(c: BenchCluster, keys: PemKeyPair[]): Promise<void> {
  const n = QUICK ? 200 : 1000;
  const toks = await tokens(c, n);
  // 1,000 tbots starting at once, each with its own connection, from one load generator process
  // per core (separate from the Auth Service, as the CI jobs would be)
  const procs = cpus().length;
  const r = await burst(c.addr, hostCA(c), toks.map((token, i) => ({ token, publicKeyPem: keys[i % keys.length]!.publicKeyPem })), procs);
  rows.push({
    bench: `burst: ${n} joins at once, new connection each (${procs} load generator processes)`,
    concurrency: n,
    n: n - r.failed,
    rate: ((n - r.failed) / r.wallMs) * 1000,
    p50: NaN,
    p99: r.wallMs,
    note: `all done in ${(r.wallMs / 1000).toFixed(2)} s${r.failed ? `; ${r.failed} failed: ${r.firstError}` : ''}`,
  });
}

function tbotOneshot(c: BenchCluster, token: string, dir: string): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [join(CLI, 'tbot.js'), 'start', '--auth-server', c.addr, '--ca-pin', c.pin, '--token', token, '--data-dir', join(dir, 'bot'), '--destination-dir', join(dir, 'out'), '--oneshot'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return performance.now() - t0;
}

async function benchTbot(c: BenchCluster): Promise<void> {
  const toks = await tokens(c, 6);
  const times = toks.slice(0, 5).map((t, i) => tbotOneshot(c, t, join(c.dir, `oneshot-${i}`))).sort((a, b) => a - b);
  rows.push({ bench: 'tbot start --oneshot (wall, to written credentials)', concurrency: 1, n: 5, rate: NaN, p50: times[2]!, p99: times[4]! });
  // a daemon renewing every 100 ms: one hour of 20-minute renewals is 3; this is ~150 renewals with outputs
  const secs = QUICK ? 5 : 15;
  const d = spawn(process.execPath, [join(CLI, 'tbot.js'), 'start', '--auth-server', c.addr, '--ca-pin', c.pin, '--token', toks[5]!, '--data-dir', join(c.dir, 'daemon'), '--destination-dir', join(c.dir, 'daemon-out'), '--certificate-ttl', '5s', '--renewal-interval', '100ms'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  d.stderr!.on('data', (b: Buffer) => (log += b.toString()));
  await new Promise((r) => setTimeout(r, secs * 1000));
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${d.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  d.kill('SIGTERM');
  const renewals = (log.match(/renewed identity/g) ?? []).length;
  rows.push({ bench: `tbot daemon RSS after ${renewals} renewals + output writes`, concurrency: '-', n: renewals, rate: NaN, p50: NaN, p99: NaN, note: `${rss.toFixed(1)} MB RSS` });
  extra.tbot_daemon_rss_mb = rss;
}

/** Seeds bot instances straight into the SQLite file (data, not the thing measured), then measures. */
async function benchInstances(): Promise<void> {
  for (const total of QUICK && !process.argv.includes('--instances-only') ? [10_000] : [10_000, 100_000]) {
    const c0 = await startAuth();
    await setup(c0);
    await c0.stop({ keep: true });
    const db = new Database(join(c0.dataDir, 'mwi.db'));
    const now = Date.now();
    const insert = db.prepare('INSERT INTO kv (key, value, revision, expires) VALUES (?, ?, ?, ?)');
    db.transaction(() => {
      for (let i = 0; i < total; i++) {
        const id = `00000000-0000-4000-8000-${i.toString().padStart(12, '0')}`;
        const at = new Date(now).toISOString();
        const inst = {
          kind: 'bot_instance', version: 'v1', metadata: { name: id, expires: new Date(now + 7200_000).toISOString() }, spec: { bot_name: 'bench', instance_id: id },
          status: { initial_authentication: { auth_at: at, join_method: 'token', join_token_name: 'h-0123456789abcdef' }, latest_authentication: { auth_at: at, join_method: 'token', generation: 1 }, generation: 1, generation_confirmed: true, public_key_fingerprint: 'f'.repeat(64), credential_expires: at, latest_heartbeats: [{ recorded_at: at, hostname: `host-${i}`, os: 'linux', version: '0.1.0', uptime_seconds: 1, one_shot: false }] },
        };
        insert.run(`/bot_instances/bench/${id}`, JSON.stringify(inst), 1_000_000 + i, now + 7200_000);
      }
    })();
    db.close();
    const c = await startAuth(c0.dataDir);
    // one page (what an API user or a UI asks for), in the middle of the key range
    const mid = `/bot_instances/bench/00000000-0000-4000-8000-${Math.floor(total / 2).toString().padStart(12, '0')}`;
    const p0 = performance.now();
    const page = await c.admin.call<{ items: unknown[] }>('GET', `/v1/admin/resources/bot_instances?limit=1000&start_after=${encodeURIComponent(mid)}`);
    const pageMs = performance.now() - p0;
    rows.push({ bench: `one page of 1000 bot instances (of ${total})`, concurrency: '-', n: page.items.length, rate: NaN, p50: pageMs, p99: NaN });
    const prof = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`] : [];
    const listed: Record<string, number> = {};
    for (const format of ['text', 'json']) {
      const t0 = performance.now();
      execFileSync(process.execPath, [...prof, join(CLI, 'tctl.js'), '--data-dir', c.dataDir, 'bots', 'instances', 'ls', '--format', format], { maxBuffer: 1 << 30, stdio: ['ignore', 'ignore', 'inherit'] });
      listed[format] = performance.now() - t0;
      rows.push({ bench: `tctl bots instances ls${format === 'json' ? ' --format json' : ' (table)'}, all ${total} instances (paged)`, concurrency: '-', n: total, rate: NaN, p50: listed[format]!, p99: NaN, note: `Auth Service RSS ${c.rssMb().toFixed(0)} MB after listing` });
    }
    extra[`instances_${total}`] = { list_table_ms: listed.text, list_json_ms: listed.json, auth_rss_mb: c.rssMb() };
    await c.stop();
    const { rmSync } = await import('node:fs');
    rmSync(c0.dir, { recursive: true, force: true });
  }
}

function fmt(v: number | undefined, digits = 0): string {
  return v === undefined || Number.isNaN(v) ? '-' : v.toFixed(digits);
}

async function main(): Promise<void> {
  const workers = process.env.BENCH_WORKERS ?? '1';
  process.stdout.write(`mwi bench${QUICK ? ' (quick)' : ''}: ${cpus().length} cores (${cpus()[0]?.model}), node ${process.version}, SQLite, ${workers} Auth Service worker(s)\n`);
  if (process.argv.includes('--instances-only')) {
    await benchInstances();
    process.stdout.write(rows.map((r) => `${r.bench}: ${fmt(r.p50, 0)} ms${r.note ? `; ${r.note}` : ""}`).join('\n') + '\n');
    return;
  }
  const crypto = await cryptoRates(QUICK ? 0.5 : 1.5);
  const gh = await startIssuer({ issuer: GITHUB_ISSUER });
  // every load generator runs on 127.0.0.1: the per-source limits would measure themselves
  // (docs/benchmarks.md; bench/flood.ts measures them with the defaults)
  const c = await startAuth(undefined, `oidc:\n  endpoint_overrides:\n    "${GITHUB_ISSUER}": "${gh.url}"\nconnection_limits:\n  max_connections: 0\n  rates: []\n`);
  try {
    await setup(c);
    const keys = await Promise.all(Array.from({ length: 64 }, () => generateKeys('ec-p256')));
    if (want('token')) await benchTokenJoins(c, keys, crypto);
    if (want('bound_keypair')) await benchBoundKeypairJoins(c, keys, crypto);
    if (want('github')) await benchGithubJoins(c, keys, crypto, gh);
    if (want('renew') || want('renew-kept') || want('cycle')) await benchRenewals(c, keys, crypto);
    if (want('tls')) await benchHandshakes(crypto);
    if (want('burst')) await benchBurst(c, keys);
    if (want('tbot')) await benchTbot(c);
    // last: the locks stay
    if (want('locks')) await benchWithLocks(c, keys, crypto);
    extra.auth_rss_after_load_mb = c.rssMb();
  } finally {
    await c.stop();
    await gh.close();
  }
  if (want('instances')) await benchInstances();

  const lines = [
    '| benchmark | concurrency | n | per s | p50 ms | p99 ms | Auth CPU µs/op | load gen CPU µs/op | of crypto bound | note |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.bench} | ${r.concurrency} | ${r.n} | ${fmt(r.rate)} | ${fmt(r.p50, 1)} | ${fmt(r.p99, 1)} | ${fmt(r.authUs)} | ${fmt(r.genUs)} | ${r.bound === undefined ? '-' : `${(r.bound * 100).toFixed(0)}%`} | ${r.note ?? ''} |`,
    ),
    '',
    '| raw crypto (same run, all cores via the libuv pool) | per s |',
    '|---|---|',
    ...Object.entries(crypto).map(([k, v]) => `| ${k} | ${v.toFixed(0)} |`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  writeFileSync('bench-results.json', JSON.stringify({ date: new Date().toISOString(), node: process.version, cores: cpus().length, workers: Number(workers), quick: QUICK, rows, crypto, extra }, null, 2));
  process.stdout.write('wrote bench-results.json\n');
}

await main();
