// `npm run bench:flood`: issue #9, finding 6. A flood of unauthenticated `/v1/join/challenge`
// requests naming a bound_keypair token (token names are not secrets), at full speed from
// 127.0.0.1, while legitimate token joins go on from other addresses; prints the data dir growth
// and the legitimate join rate against an unloaded run of the same length. Figures, not a test.
//
//   node dist/bench/flood.js [--seconds=60] [--baseline-seconds=20] [--flood-connections=64]
//                            [--legit-concurrency=4] [--no-limits]
//
// --no-limits starts the Auth Service with `connection_limits: {max_connections: 0, rates: []}`
// (the picture before per-source limits); by default it runs with mwi's default limits.
import { fork, type ChildProcess } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AUTH_SERVER_NAME, PATHS } from '../src/api/wire.js';
import { generateKeys, type PemKeyPair } from '../src/crypto/keys.js';
import { sshAuthorizedKey } from '../src/crypto/ssh.js';
import { startAuth, type BenchCluster } from './cluster.js';
import { summarize } from './stats.js';

const arg = (name: string, dflt: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? dflt);

/** One HTTPS POST over `agent` from `localAddress`; resolves with the status (never rejects). */
function post(agent: Agent, addr: string, localAddress: string, path: string, body: unknown): Promise<number> {
  const i = addr.lastIndexOf(':');
  const text = JSON.stringify(body);
  return new Promise((resolve) => {
    const req = request(
      {
        agent,
        host: addr.slice(0, i),
        port: Number(addr.slice(i + 1)),
        localAddress,
        servername: AUTH_SERVER_NAME,
        method: 'POST',
        path,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', () => resolve(0));
      },
    );
    req.on('error', () => resolve(0));
    req.end(text);
  });
}

type FloodSetup = { addr: string; ca: string[]; token: string; pub: string; connections: number };
type FloodReport = { sent: number; byStatus: Record<string, number> };

/** The flooder, in its own process: `connections` loops on kept-alive connections from 127.0.0.1. */
async function floodChild(): Promise<void> {
  let stop = false;
  const byStatus: Record<string, number> = {};
  let sent = 0;
  process.on('message', (m: { setup?: FloodSetup; stop?: true }) => {
    if (m.stop) {
      stop = true;
      return;
    }
    const s = m.setup!;
    const agent = new Agent({
      keepAlive: true,
      maxSockets: s.connections,
      ca: s.ca,
      servername: AUTH_SERVER_NAME,
      minVersion: 'TLSv1.3',
    });
    const body = { token: s.token, join_method: 'bound_keypair', payload: { public_keys: [s.pub] } };
    void Promise.all(
      Array.from({ length: s.connections }, async () => {
        while (!stop) {
          const status = await post(agent, s.addr, '127.0.0.1', PATHS.challenge, body);
          sent++;
          byStatus[status] = (byStatus[status] ?? 0) + 1;
        }
      }),
    ).then(() => {
      agent.destroy();
      process.send!({ sent, byStatus } satisfies FloodReport, () => process.exit(0));
    });
  });
}

/** Bytes under `dir` (the SQLite file, its WAL and shm, the audit log). */
function dirBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return n;
}

interface Phase {
  /** Auth Service CPU over the phase, in cores. */
  authCpu: number;
  joins: number;
  failed: number;
  seconds: number;
  rate: number;
  p50: number;
  p99: number;
  growthBytes: number;
  flood?: FloodReport;
}

/**
 * Legitimate token joins for `seconds`, closed loop at `concurrency`: each join is a new
 * connection from the next address in 127.0.0.2-127.0.0.254, like bots starting on many machines
 * (a single legitimate address would measure its own per-source budget instead).
 */
async function legitPhase(
  c: BenchCluster,
  seconds: number,
  concurrency: number,
  keys: PemKeyPair[],
  expectedRate: number,
  flood?: ChildProcess,
): Promise<Phase> {
  const tokens: string[] = [];
  const refill = async (n: number) => {
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = 0; i < n / 8; i++)
          tokens.push(
            (
              await c.admin.call<{ token: string }>('POST', '/v1/admin/tokens', {
                bot_name: 'flood',
                join_method: 'token',
                ttl: '2h',
              })
            ).token,
          );
      }),
    );
  };
  // enough single-use tokens for the whole phase, made before the clock starts
  await refill(Math.max(400, Math.ceil(expectedRate * seconds * 1.5)));
  const before = dirBytes(c.dataDir);
  let report: Promise<FloodReport> | undefined;
  if (flood) {
    report = new Promise((r) => flood.once('message', (m: FloodReport) => r(m)));
    // let the flood reach full speed first
    await new Promise((r) => setTimeout(r, 1000));
  }
  const agentFor = (_local: string) =>
    new Agent({ keepAlive: false, ca: [c.caCerts[0]!], servername: AUTH_SERVER_NAME, minVersion: 'TLSv1.3' });
  const samples: number[] = [];
  let failed = 0;
  let next = 0;
  const cpu0 = c.cpuMs();
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end && tokens.length > 0) {
        const i = next++;
        const local = `127.0.0.${2 + (i % 253)}`;
        const agent = agentFor(local);
        const s = performance.now();
        const status = await post(agent, c.addr, local, PATHS.join, {
          token: tokens.pop(),
          join_method: 'token',
          public_key: keys[i % keys.length]!.publicKeyPem,
        });
        agent.destroy();
        if (status === 200) samples.push(performance.now() - s);
        else failed++;
      }
    }),
  );
  const wallMs = performance.now() - t0;
  const authCpu = (c.cpuMs() - cpu0) / wallMs;
  if (tokens.length === 0) process.stdout.write('(ran out of prepared tokens before the end: the phase is shorter)\n');
  flood?.send({ stop: true });
  const fr = report ? await report : undefined;
  // the data dir after the WAL checkpointer had a moment
  await new Promise((r) => setTimeout(r, 1000));
  const s = summarize(samples, wallMs);
  return {
    authCpu,
    joins: s.n,
    failed,
    seconds: wallMs / 1000,
    rate: s.rate,
    p50: s.p50,
    p99: s.p99,
    growthBytes: dirBytes(c.dataDir) - before,
    ...(fr ? { flood: fr } : {}),
  };
}

async function main(): Promise<void> {
  const seconds = arg('seconds', 60);
  const baseline = arg('baseline-seconds', Math.min(20, seconds));
  const connections = arg('flood-connections', 64);
  const concurrency = arg('legit-concurrency', 4);
  const noLimits = process.argv.includes('--no-limits');
  const c = await startAuth(
    undefined,
    noLimits ? 'connection_limits:\n  max_connections: 0\n  rates: []\n' : undefined,
  );
  try {
    await c.admin.call('POST', '/v1/admin/resources', {
      resource: { kind: 'role', metadata: { name: 'flood' }, spec: { allow: { logins: ['flood'] } } },
    });
    await c.admin.call('POST', '/v1/admin/resources', {
      resource: { kind: 'bot', metadata: { name: 'flood' }, spec: { roles: ['flood'] } },
    });
    const bk = await generateKeys('ed25519');
    const pub = sshAuthorizedKey(createPublicKey(bk.publicKeyPem));
    const bkToken = (
      await c.admin.call<{ token: string }>('POST', '/v1/admin/tokens', {
        bot_name: 'flood',
        join_method: 'bound_keypair',
        ttl: '2h',
        spec: { bound_keypair: { onboarding: { initial_public_key: pub } } },
      })
    ).token;
    const keys = await Promise.all(Array.from({ length: 16 }, () => generateKeys('ec-p256')));

    process.stdout.write(
      `unloaded: ${baseline} s of legitimate token joins (concurrency ${concurrency}, each from its own address)\n`,
    );
    const quiet = await legitPhase(c, baseline, concurrency, keys, 300);
    const child = fork(fileURLToPath(import.meta.url), ['--flood-child'], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    child.send({ setup: { addr: c.addr, ca: [c.caCerts[0]!], token: bkToken, pub, connections } satisfies FloodSetup });
    process.stdout.write(
      `loaded: ${seconds} s of the same, with ${connections} kept-alive connections from 127.0.0.1 flooding ` +
        `${PATHS.challenge}\n`,
    );
    const loud = await legitPhase(c, seconds, concurrency, keys, Math.max(50, quiet.rate), child);

    const mb = (b: number) => (b / 1e6).toFixed(1);
    const f = loud.flood!;
    const lines = [
      `limits: ${
        noLimits
          ? 'none (--no-limits)'
          : 'mwi defaults (connection_limits: max_connections 1000, rates [{period: 1m, average: 600, burst: 200}])'
      }`,
      `| phase | s | legit joins | legit per s | p50 ms | p99 ms | failed | data dir growth MB | Auth CPU (cores) |`,
      `|---|---|---|---|---|---|---|---|---|`,
      ...[['unloaded', quiet] as const, ['flood', loud] as const].map(
        ([name, p]) =>
          `| ${name} | ${p.seconds.toFixed(0)} | ${p.joins} | ${p.rate.toFixed(1)} | ${p.p50.toFixed(1)} | ` +
          `${p.p99.toFixed(1)} | ${p.failed} | ${mb(p.growthBytes)} | ${p.authCpu.toFixed(2)} |`,
      ),
      '',
      `flood: ${f.sent} challenge requests (${(f.sent / loud.seconds).toFixed(0)}/s), by status: ` +
        `${JSON.stringify(f.byStatus)}`,
      `legit join rate under flood: ${((loud.rate / quiet.rate) * 100).toFixed(0)}% of unloaded (target >= 80%)`,
      `data dir growth during the flood: ${mb(loud.growthBytes)} MB (target < 50 MB; includes the legitimate ` +
        `joins' own writes, ${mb((quiet.growthBytes / quiet.seconds) * loud.seconds)} MB at the unloaded pace)`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await c.stop();
  }
}

if (process.argv.includes('--flood-child')) await floodChild();
else await main();
