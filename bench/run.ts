// `npm run bench`: joins, renewals, a burst, tbot wall time and memory, the single executables' size
// and wall time, instance listing, and the machine's raw crypto rates measured in the same run.
// Prints one table; writes bench-results.json.
// The groups live in bench/groups/; this runs them in a fixed order and prints what they recorded.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeys } from '../src/crypto/keys.js';
import { GITHUB_ISSUER } from '../src/join/github/wire.js';
import { startIssuer } from '../test/helpers/oidc-issuer.js';
import { startAuth } from './cluster.js';
import { cryptoRates } from './crypto.js';
import { setup } from './fixtures.js';
import { awsFixtures, ec2Joins, iamJoins } from './groups/aws.js';
import { boundKeypairJoins, burstJoins, githubJoins, joinsWithLocks, tokenJoins } from './groups/join.js';
import { renewalCycle, renewKeptAlive, renewNewConnection } from './groups/renew.js';
import { instances } from './groups/storage.js';
import { tbot } from './groups/tbot.js';
import { binary } from './groups/binary.js';
import { handshakes } from './groups/tls.js';
import { workloadApi } from './groups/workload-api.js';
import { jwtSvids, x509Svids } from './groups/workload-identity.js';
import type { Bench, LoadBench } from './measure.js';

const QUICK = process.argv.includes('--quick');
const INSTANCES_ONLY = process.argv.includes('--instances-only');
/** `--only=token,renew`: run only the named groups (those of GROUPS, and instances). */
const ONLY = process.argv
  .find((a) => a.startsWith('--only='))
  ?.slice(7)
  .split(',');
const want = (group: string) => !ONLY || ONLY.includes(group);

/** The groups run against one Auth Service, in this order; the locks group last, as its locks stay. */
const GROUPS: Array<[name: string, run: (b: LoadBench) => Promise<void>]> = [
  ['token', tokenJoins],
  ['bound_keypair', boundKeypairJoins],
  ['github', githubJoins],
  ['iam', iamJoins],
  ['ec2', ec2Joins],
  ['renew', renewNewConnection],
  ['cycle', renewalCycle],
  ['renew-kept', renewKeptAlive],
  ['tls', handshakes],
  ['burst', burstJoins],
  ['tbot', tbot],
  ['binary', binary],
  ['workload-api', workloadApi],
  ['x509-svid', x509Svids],
  ['jwt-svid', jwtSvids],
  ['locks', joinsWithLocks],
];

function fmt(v: number | undefined, digits = 0): string {
  return v === undefined || Number.isNaN(v) ? '-' : v.toFixed(digits);
}

async function main(): Promise<void> {
  const workers = process.env.BENCH_WORKERS ?? '1';
  const machine = `${cpus().length} cores (${cpus()[0]?.model}), node ${process.version}`;
  process.stdout.write(`mwi bench${QUICK ? ' (quick)' : ''}: ${machine}, SQLite, ${workers} Auth Service worker(s)\n`);
  const b: Bench = { quick: QUICK, rows: [], extra: {} };
  if (INSTANCES_ONLY) {
    await instances(b, true);
    for (const r of b.rows) process.stdout.write(`${r.bench}: ${fmt(r.p50, 0)} ms${r.note ? `; ${r.note}` : ''}\n`);
    return;
  }
  const rates = await cryptoRates(QUICK ? 0.5 : 1.5);
  const issuer = await startIssuer({ issuer: GITHUB_ISSUER });
  // every load generator runs on 127.0.0.1: the per-source limits would measure themselves
  // (docs/benchmarks.md; bench/flood.ts measures them with the defaults)
  const oidc = `oidc:\n  endpoint_overrides:\n    "${GITHUB_ISSUER}": "${issuer.url}"\n`;
  const awsDir = mkdtempSync(join(tmpdir(), 'mwi-bench-aws-'));
  const aws = await awsFixtures(awsDir);
  const limits = 'connection_limits:\n  max_connections: 0\n  rates: []\n';
  const c = await startAuth(undefined, `${oidc}${aws.yaml}${limits}`);
  try {
    await setup(c);
    const keys = await Promise.all(Array.from({ length: 64 }, () => generateKeys('ec-p256')));
    const load: LoadBench = { ...b, c, keys, rates, issuer, aws };
    for (const [name, run] of GROUPS) if (want(name)) await run(load);
    b.extra.auth_rss_after_load_mb = c.rssMb();
  } finally {
    await c.stop();
    await issuer.close();
    await aws.close();
    rmSync(awsDir, { recursive: true, force: true });
  }
  if (want('instances')) await instances(b, false);

  const lines = [
    '| benchmark | concurrency | n | per s | p50 ms | p99 ms | Auth CPU µs/op | ' +
      'load gen CPU µs/op | of crypto bound | note |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...b.rows.map(
      (r) =>
        `| ${r.bench} | ${r.concurrency} | ${r.n} | ${fmt(r.rate)} | ${fmt(r.p50, 1)} | ${fmt(r.p99, 1)} | ` +
        `${fmt(r.authUs)} | ${fmt(r.genUs)} | ` +
        `${r.bound === undefined ? '-' : `${(r.bound * 100).toFixed(0)}%`} | ${r.note ?? ''} |`,
    ),
    '',
    '| raw crypto (same run, all cores via the libuv pool) | per s |',
    '|---|---|',
    ...Object.entries(rates).map(([k, v]) => `| ${k} | ${v.toFixed(0)} |`),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  const results = {
    date: new Date().toISOString(),
    node: process.version,
    cores: cpus().length,
    workers: Number(workers),
    quick: QUICK,
    rows: b.rows,
    crypto: rates,
    extra: b.extra,
  };
  writeFileSync('bench-results.json', JSON.stringify(results, null, 2));
  process.stdout.write('wrote bench-results.json\n');
}

await main();
