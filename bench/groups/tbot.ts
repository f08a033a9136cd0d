// tbot itself: wall time of `tbot start --oneshot` to written credentials, and a renewing
// daemon's memory.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { CLI_DIR, spawnCli } from '../../test/helpers/procs.js';
import { processRssMb, type BenchCluster } from '../cluster.js';
import { tokens } from '../fixtures.js';
import type { LoadBench } from '../measure.js';

const joinFlags = (c: BenchCluster, token: string) => ['--auth-server', c.addr, '--ca-pin', c.pin, '--token', token];

function tbotOneshot(c: BenchCluster, token: string, dir: string): number {
  const t0 = performance.now();
  const dirs = ['--data-dir', join(dir, 'bot'), '--destination-dir', join(dir, 'out')];
  const args = [...joinFlags(c, token), ...dirs, '--oneshot'];
  const r = spawnSync(process.execPath, [join(CLI_DIR, 'tbot.js'), 'start', ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return performance.now() - t0;
}

/** A daemon renewing every 100 ms: one hour of 20-minute renewals is 3; this is ~150 renewals with outputs. */
async function daemonRss(b: LoadBench, token: string): Promise<void> {
  const { c } = b;
  const dirs = ['--data-dir', join(c.dir, 'daemon'), '--destination-dir', join(c.dir, 'daemon-out')];
  const renewEvery = ['--certificate-ttl', '5s', '--renewal-interval', '100ms'];
  const d = spawnCli('tbot', ['start', ...joinFlags(c, token), ...dirs, ...renewEvery]);
  await new Promise((r) => setTimeout(r, (b.quick ? 5 : 15) * 1000));
  const rss = processRssMb(d.pid!);
  d.kill('SIGTERM');
  const renewals = (d.out().match(/renewed identity/g) ?? []).length;
  const name = `tbot daemon RSS after ${renewals} renewals + output writes`;
  const note = `${rss.toFixed(1)} MB RSS`;
  b.rows.push({ bench: name, concurrency: '-', n: renewals, rate: NaN, p50: NaN, p99: NaN, note });
  b.extra.tbot_daemon_rss_mb = rss;
}

export async function tbot(b: LoadBench): Promise<void> {
  const { c } = b;
  const toks = await tokens(c, 6);
  const times = toks
    .slice(0, 5)
    .map((t, i) => tbotOneshot(c, t, join(c.dir, `oneshot-${i}`)))
    .sort((x, y) => x - y);
  const name = 'tbot start --oneshot (wall, to written credentials)';
  b.rows.push({ bench: name, concurrency: 1, n: 5, rate: NaN, p50: times[2]!, p99: times[4]! });
  await daemonRss(b, toks[5]!);
}
