// Bot instances at scale: seeded through the storage Backend (data, not the thing measured),
// then one page over the admin API and every instance through `tctl bots instances ls`.
import { execFileSync, type StdioOptions } from 'node:child_process';
import { join } from 'node:path';
import type { Backend, TxOp } from '../../src/storage/backend.js';
import { openBackend } from '../../src/storage/open.js';
import { CLI_DIR } from '../../test/helpers/procs.js';
import { PROFILE_ARGS, startAuth } from '../cluster.js';
import { setup } from '../fixtures.js';
import type { Bench } from '../measure.js';

/** Creates per transaction while seeding: each commits on its own, so memory stays bounded. */
const SEED_BATCH = 10_000;

const instanceId = (i: number) => `00000000-0000-4000-8000-${i.toString().padStart(12, '0')}`;

/** Instance `i` of bot `bench`, joined with a token at `now`, as the Auth Service stores it. */
function instance(i: number, now: number, expires: number): string {
  const id = instanceId(i);
  const at = new Date(now).toISOString();
  const host = { hostname: `host-${i}`, os: 'linux', version: '0.1.0', uptime_seconds: 1, one_shot: false };
  return JSON.stringify({
    kind: 'bot_instance',
    version: 'v1',
    metadata: { name: id, expires: new Date(expires).toISOString() },
    spec: { bot_name: 'bench', instance_id: id },
    status: {
      initial_authentication: { auth_at: at, join_method: 'token', join_token_name: 'h-0123456789abcdef' },
      latest_authentication: { auth_at: at, join_method: 'token', generation: 1 },
      generation: 1,
      generation_confirmed: true,
      public_key_fingerprint: 'f'.repeat(64),
      credential_expires: at,
      latest_heartbeats: [{ recorded_at: at, ...host }],
    },
  });
}

/** `total` joined instances of bot `bench`, expiring in two hours, created in transactions of SEED_BATCH. */
export async function seedInstances(backend: Backend, total: number, now: number): Promise<void> {
  const expires = now + 7200_000;
  for (let from = 0; from < total; from += SEED_BATCH) {
    const ops: TxOp[] = [];
    for (let i = from; i < Math.min(total, from + SEED_BATCH); i++) {
      const key = `/bot_instances/bench/${instanceId(i)}`;
      ops.push({ op: 'create', key, value: instance(i, now, expires), expires });
    }
    if (!(await backend.transact(ops))) throw new Error(`seeding instances ${from}..: one already exists`);
  }
}

/** Seeds bot instances with the Auth Service stopped, starts it again on them, then measures. */
export async function instances(b: Bench, onlyInstances: boolean): Promise<void> {
  for (const total of b.quick && !onlyInstances ? [10_000] : [10_000, 100_000]) {
    const c0 = await startAuth();
    await setup(c0);
    await c0.halt();
    // the storage the Auth Service used (its default under the data dir), through the same interface
    const backend = await openBackend(undefined, c0.dataDir);
    try {
      await seedInstances(backend, total, Date.now());
    } finally {
      await backend.close();
    }
    const c = await startAuth(c0.dataDir);
    // one page (what an API user or a UI asks for), in the middle of the key range
    const mid = `/bot_instances/bench/${instanceId(Math.floor(total / 2))}`;
    const p0 = performance.now();
    const url = `/v1/admin/resources/bot_instances?limit=1000&start_after=${encodeURIComponent(mid)}`;
    const page = await c.admin.call<{ items: unknown[] }>('GET', url);
    const pageMs = performance.now() - p0;
    const name = `one page of 1000 bot instances (of ${total})`;
    b.rows.push({ bench: name, concurrency: '-', n: page.items.length, rate: NaN, p50: pageMs, p99: NaN });
    const listed: Record<string, number> = {};
    for (const format of ['text', 'json']) {
      const t0 = performance.now();
      const tctl = [join(CLI_DIR, 'tctl.js'), '--data-dir', c.dataDir, 'bots', 'instances', 'ls', '--format', format];
      const stdio: StdioOptions = ['ignore', 'ignore', 'inherit'];
      execFileSync(process.execPath, [...PROFILE_ARGS, ...tctl], { maxBuffer: 1 << 30, stdio });
      listed[format] = performance.now() - t0;
      const shown = format === 'json' ? ' --format json' : ' (table)';
      const name = `tctl bots instances ls${shown}, all ${total} instances (paged)`;
      const note = `Auth Service RSS ${c.rssMb().toFixed(0)} MB after listing`;
      b.rows.push({ bench: name, concurrency: '-', n: total, rate: NaN, p50: listed[format], p99: NaN, note });
    }
    b.extra[`instances_${total}`] = { list_table_ms: listed.text, list_json_ms: listed.json, auth_rss_mb: c.rssMb() };
    await c.stop();
    await c0.stop();
  }
}
