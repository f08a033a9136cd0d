// `node dist/bench/postgres.js [--quick]` (after `npm run build`): token joins and renewals on
// PostgreSQL beside SQLite, one Auth Service replica each, then two replicas on one PostgreSQL
// database with the load spread over both. PostgreSQL 15 runs locally with its durable defaults
// (fsync, synchronous commit), started and stopped here (test/helpers/postgres.ts). Prints a
// table; writes bench-postgres.json.
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { ApiClient } from '../src/api/client.js';
import { PATHS, type BotCredentialResponse } from '../src/api/wire.js';
import { generateKeys, type PemKeyPair } from '../src/crypto/keys.js';
import { startPostgres } from '../test/helpers/postgres.js';
import { startAuth, type BenchCluster } from './cluster.js';
import { hostCA, setup, tokenJoin, tokens } from './fixtures.js';
import { load, loadRow, type Row } from './measure.js';
import { Pool } from './stats.js';

const QUICK = process.argv.includes('--quick');
const LEVELS = [16, 64];
/** Every load generator runs on 127.0.0.1: no per-source limits (as bench/run.ts). */
const LIMITS = 'connection_limits:\n  max_connections: 0\n  rates: []\n';

/** Several replicas measured as one: CPU summed, requests spread round robin. */
function combined(cs: BenchCluster[]): Pick<BenchCluster, 'cpuMs'> {
  return { cpuMs: () => cs.reduce((sum, c) => sum + c.cpuMs(), 0) };
}

async function joins(cs: BenchCluster[], keys: PemKeyPair[], label: string, rows: Row[]): Promise<void> {
  for (const conc of LEVELS) {
    const n = QUICK ? conc * 4 : Math.max(1500, conc * 8);
    const toks = await tokens(cs[0]!, n);
    const apis = cs.map((c) => new ApiClient({ addrs: [c.addr], tls: { ca: hostCA(c) } }));
    const r = await load(combined(cs), n, conc, async (i) => {
      await tokenJoin(apis[i % apis.length]!, toks[i]!, keys[i % keys.length]!);
    });
    for (const a of apis) a.close();
    rows.push(loadRow(`join token, ${label}`, conc, r, Infinity));
  }
}

async function renewals(cs: BenchCluster[], keys: PemKeyPair[], label: string, rows: Row[]): Promise<void> {
  for (const conc of LEVELS) {
    const n = QUICK ? conc * 4 : Math.max(1500, conc * 8);
    const toks = await tokens(cs[0]!, conc);
    // each bot on its own kept-alive connection to one replica, bots spread over the replicas
    const apis = await Promise.all(
      toks.map(async (t, i) => {
        const c = cs[i % cs.length]!;
        const key = keys[i % keys.length]!;
        const join = new ApiClient({ addrs: [c.addr], tls: { ca: hostCA(c) } });
        const id = await tokenJoin(join, t, key);
        join.close();
        const api = new ApiClient({
          addrs: [c.addr],
          tls: { ca: id.tls_ca_certs, cert: id.tls_cert, key: key.privateKeyPem },
        });
        await api.call('GET', PATHS.ping);
        return api;
      }),
    );
    const pool = new Pool(apis);
    const r = await load(combined(cs), n, conc, async (i) => {
      const api = await pool.take();
      const next = keys[(i * 7) % keys.length]!;
      const rekey = (a: BotCredentialResponse) => ({ ca: a.tls_ca_certs, cert: a.tls_cert, key: next.privateKeyPem });
      try {
        await api.call('POST', PATHS.renew, { public_key: next.publicKeyPem }, { rekey });
      } finally {
        pool.give(api);
      }
    });
    for (const a of apis) a.close();
    rows.push(loadRow(`renew, kept-alive connection, ${label}`, conc, r, Infinity));
  }
}

async function measure(cs: BenchCluster[], keys: PemKeyPair[], label: string, rows: Row[]): Promise<void> {
  try {
    await setup(cs[0]!);
    await joins(cs, keys, label, rows);
    await renewals(cs, keys, label, rows);
  } finally {
    await Promise.all(cs.map((c) => c.stop()));
  }
}

async function main(): Promise<void> {
  const machine = `${cpus().length} cores (${cpus()[0]?.model}), node ${process.version}`;
  process.stdout.write(`mwi bench, PostgreSQL beside SQLite${QUICK ? ' (quick)' : ''}: ${machine}\n`);
  const keys = await Promise.all(Array.from({ length: 64 }, () => generateKeys('ec-p256')));
  const rows: Row[] = [];
  await measure([await startAuth(undefined, LIMITS)], keys, 'SQLite, 1 replica', rows);
  const pg = await startPostgres({ durable: true });
  try {
    const one = `storage: ${await pg.createDatabase()}\n${LIMITS}`;
    await measure([await startAuth(undefined, one)], keys, 'PostgreSQL, 1 replica', rows);
    const two = `storage: ${await pg.createDatabase()}\n${LIMITS}`;
    const first = await startAuth(undefined, two);
    await measure([first, await startAuth(undefined, two)], keys, 'PostgreSQL, 2 replicas', rows);
  } finally {
    await pg.stop();
  }
  const sqlite = new Map(
    rows
      .filter((r) => r.bench.endsWith('SQLite, 1 replica'))
      .map((r) => [`${r.bench.split(',')[0]}|${r.concurrency}`, r.rate]),
  );
  const fmt = (v: number | undefined, d = 0) => (v === undefined || Number.isNaN(v) ? '-' : v.toFixed(d));
  const lines = [
    '| benchmark | concurrency | n | per s | of SQLite | p50 ms | p99 ms | Auth CPU µs/op | note |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map((r) => {
      const base = sqlite.get(`${r.bench.split(',')[0]}|${r.concurrency}`);
      const of = base ? `${((r.rate / base) * 100).toFixed(0)}%` : '-';
      const cells = [r.bench, r.concurrency, r.n, fmt(r.rate), of, fmt(r.p50, 1), fmt(r.p99, 1), fmt(r.authUs)];
      return `| ${cells.join(' | ')} | ${r.note ?? ''} |`;
    }),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  writeFileSync('bench-postgres.json', JSON.stringify({ date: new Date().toISOString(), machine, rows }, null, 2));
  process.stdout.write('wrote bench-postgres.json\n');
}

await main();
