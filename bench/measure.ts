// How a benchmark measures and what it records: closed and open loops over a task, with the CPU
// both sides spent, as rows of the table `npm run bench` prints.
import type { PemKeyPair } from '../src/crypto/keys.js';
import type { TestIssuer } from '../test/helpers/oidc-issuer.js';
import type { AwsFixtures } from './groups/aws.js';
import type { BenchCluster } from './cluster.js';
import { drive, pace, summarize } from './stats.js';

/** One row of the table (and of bench-results.json). */
export type Row = {
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

/** One run: its settings and what it records. Every group adds its rows in the order it measures them. */
export interface Bench {
  /** `--quick`: smaller counts, for checking that it all works. */
  quick: boolean;
  rows: Row[];
  /** Figures for bench-results.json only. */
  extra: Record<string, unknown>;
}

/** A run against the main Auth Service: the groups that measure joins, renewals and tbot. */
export interface LoadBench extends Bench {
  c: BenchCluster;
  /** Client keys, reused round robin (key generation is not what is measured). */
  keys: PemKeyPair[];
  /** Raw crypto rates of this machine, measured in the same run (see cryptoBound). */
  rates: Record<string, number>;
  /** The OIDC issuer github joins use; the Auth Service fetches its keys over loopback. */
  issuer: TestIssuer;
  /** The STS stand-in and the region CA the iam and ec2 joins use. */
  aws: AwsFixtures;
}

const LEVELS = [1, 16, 64, 256];

/** Operations measured at concurrency `c`. */
export function perLevel(b: Bench, c: number): number {
  return b.quick ? Math.max(50, c * 2) : c === 1 ? 300 : Math.max(1500, c * 8);
}

export type Loaded = Awaited<ReturnType<typeof load>>;

/** `drive` (or, with a rate, `pace`) plus the CPU both sides spent, per completed operation. */
export async function load(
  c: Pick<BenchCluster, 'cpuMs'>,
  n: number,
  conc: number,
  task: (i: number) => Promise<void>,
  rate?: number,
) {
  const a0 = c.cpuMs();
  const g0 = process.cpuUsage();
  const r = rate ? await pace(n, rate, task) : await drive(n, conc, task);
  const g = process.cpuUsage(g0);
  const done = Math.max(1, r.samples.length);
  const authUs = ((c.cpuMs() - a0) * 1000) / done;
  return { ...r, ...summarize(r.samples, r.wallMs), authUs, genUs: (g.user + g.system) / done };
}

export function loadRow(bench: string, conc: number | string, r: Loaded, bound: number, note?: string): Row {
  const errors = r.errors ? `${r.errors} errors: ${r.firstError}` : '';
  const text = [note, errors].filter(Boolean).join('; ');
  const { n, rate, p50, p99, authUs, genUs } = r;
  const row: Row = { bench, concurrency: conc, n, rate, p50, p99, authUs, genUs, bound: rate / bound };
  return text ? { ...row, note: text } : row;
}

/** What one benchmark runs: a task per operation (i = 0..n-1), and what to close afterwards. */
export interface Prepared {
  task: (i: number) => Promise<void>;
  close?: () => void;
}

/**
 * A join/renew benchmark: closed loop at every concurrency level, then open loop at half the
 * best rate seen (latency from each request's scheduled start). `prepare` gets the operation
 * count and how many clients may be in flight at once.
 */
export async function levels(
  b: Bench,
  c: Pick<BenchCluster, 'cpuMs'>,
  bench: string,
  bound: number,
  prepare: (n: number, clients: number) => Promise<Prepared>,
  note?: string,
): Promise<void> {
  let peak = 0;
  for (const conc of LEVELS) {
    const n = perLevel(b, conc);
    const { task, close } = await prepare(n, conc);
    const r = await load(c, n, conc, task);
    close?.();
    peak = Math.max(peak, r.rate);
    b.rows.push(loadRow(bench, conc, r, bound, note));
  }
  const rate = peak / 2;
  const n = Math.max(50, Math.round(rate * (b.quick ? 1 : 3)));
  const { task, close } = await prepare(n, 256);
  const r = await load(c, n, 0, task, rate);
  close?.();
  b.rows.push(loadRow(`${bench}: open loop at half the peak rate`, `${Math.round(rate)}/s`, r, bound, note));
}
