// The single executables (`npm run build:binary`, built here into the bench's temp dir from the
// sources of this run): their sizes, and the wall time of `tbot start --oneshot` from the tbot
// binary against node running dist/src/cli/tbot.js, the two taking turns against the same Auth Service.
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLI_DIR } from '../../test/helpers/procs.js';
import type { BenchCluster } from '../cluster.js';
import { tokens } from '../fixtures.js';
import type { LoadBench } from '../measure.js';

// compiled to dist/bench/groups: the repository is three levels up
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const PROGRAMS = ['tbot', 'tctl', 'mwi'];

/** Wall time of one `tbot start --oneshot` (join, then write an identity output) by `argv`. */
function oneshot(argv: string[], c: BenchCluster, token: string, dir: string): number {
  const args = ['--auth-server', c.addr, '--ca-pin', c.pin, '--token', token, '--oneshot'];
  const dirs = ['--data-dir', join(dir, 'bot'), '--destination-dir', join(dir, 'out')];
  const t0 = performance.now();
  const r = spawnSync(argv[0]!, [...argv.slice(1), 'start', ...args, ...dirs], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
  return performance.now() - t0;
}

const sorted = (xs: number[]) => [...xs].sort((x, y) => x - y);

export async function binary(b: LoadBench): Promise<void> {
  const { c } = b;
  const bin = join(c.dir, 'bin');
  const t0 = performance.now();
  const build = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-binary.mjs'), '--out', bin], {
    encoding: 'utf8',
  });
  if (build.status !== 0) throw new Error(`build:binary: ${build.stderr}`);
  const buildS = (performance.now() - t0) / 1000;
  const sizes = Object.fromEntries(PROGRAMS.map((p) => [p, statSync(join(bin, p)).size / 1e6]));
  const note = `${PROGRAMS.map((p) => `${p} ${sizes[p]!.toFixed(1)} MB`).join(', ')}; built in ${buildS.toFixed(1)} s`;
  b.rows.push({
    bench: 'single executables (npm run build:binary)',
    concurrency: '-',
    n: 3,
    rate: NaN,
    p50: NaN,
    p99: NaN,
    note,
  });

  const n = b.quick ? 3 : 7;
  const toks = await tokens(c, 2 * n);
  const sea: number[] = [];
  const node: number[] = [];
  for (let i = 0; i < n; i++) {
    sea.push(oneshot([join(bin, 'tbot')], c, toks[2 * i]!, join(c.dir, `sea-oneshot-${i}`)));
    node.push(
      oneshot([process.execPath, join(CLI_DIR, 'tbot.js')], c, toks[2 * i + 1]!, join(c.dir, `node-oneshot-${i}`)),
    );
  }
  const [s, d] = [sorted(sea), sorted(node)];
  const mid = Math.floor(n / 2);
  for (const [name, xs] of [
    ['tbot binary start --oneshot (wall, to written credentials)', s],
    ['node dist/src/cli/tbot.js start --oneshot (same, taking turns with the binary)', d],
  ] as const)
    b.rows.push({ bench: name, concurrency: 1, n, rate: NaN, p50: xs[mid]!, p99: xs[n - 1]! });
  b.extra.binary = { sizes_mb: sizes, build_s: buildS, oneshot_ms: { binary: s, node: d } };
}
