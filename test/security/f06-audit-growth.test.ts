import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { FileAuditLog, type AuditEvent } from '../../src/auth/audit.js';

const dir = mkdtempSync(join(tmpdir(), 'mwi-f06-audit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

type Line = AuditEvent & { count?: number; n?: number; first_time?: string };
/** Every line of the log and its rotated files. */
function allLines(sub: string): Line[] {
  const d = join(dir, sub);
  return readdirSync(d)
    .filter((f) => f.startsWith('events.log'))
    .flatMap((f) =>
      readFileSync(join(d, f), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Line),
    );
}
const totalSize = (sub: string) =>
  readdirSync(join(dir, sub)).reduce((sum, f) => sum + statSync(join(dir, sub, f)).size, 0);
const turn = () => new Promise((r) => setImmediate(r));

it('finding 6: 10,000 identical refusals write a bounded number of lines with the right total count', async () => {
  const log = new FileAuditLog(join(dir, 'flood', 'events.log'), Date.now, { refusalWindowMs: 200 });
  const refusal: AuditEvent = {
    event: 'bot.challenge',
    success: false,
    join_method: 'bound_keypair',
    token_id: 'public-name',
    remote_addr: '203.0.113.7',
    reason: 'challenge store full',
  };
  const other: AuditEvent = { ...refusal, remote_addr: '203.0.113.8' };
  for (let i = 0; i < 10_000; i++) {
    log.emit({ ...refusal });
    if (i % 10 === 0) log.emit({ ...other });
    // a flood arrives over many turns of the event loop, and windows close while it lasts
    if (i % 100 === 99) await turn();
    if (i === 5000) await new Promise((r) => setTimeout(r, 250));
  }
  // successes are never aggregated, even identical ones
  for (let i = 0; i < 20; i++) log.emit({ event: 'bot.join', success: true, bot_name: 'b', token_id: 'public-name' });
  await log.close();
  const lines = allLines('flood');
  const flood = lines.filter((l) => l.remote_addr === refusal.remote_addr);
  const others = lines.filter((l) => l.remote_addr === other.remote_addr);
  assert.ok(flood.length <= 8, `${flood.length} lines for 10,000 identical refusals`);
  assert.equal(
    flood.reduce((sum, l) => sum + (l.count ?? 1), 0),
    10_000,
    'the lines account for every refusal',
  );
  assert.equal(
    others.reduce((sum, l) => sum + (l.count ?? 1), 0),
    1000,
    'interleaved refusals are counted apart',
  );
  for (const l of flood) assert.equal(l.reason, refusal.reason);
  assert.equal(lines.filter((l) => l.event === 'bot.join' && l.success).length, 20);
});

it('finding 6: the audit log rotates by size and keeps max_files old files: the total stays under max_size * (max_files + 1)', async () => {
  const maxSize = 64 * 1024;
  const maxFiles = 3;
  const path = join(dir, 'rotate', 'events.log');
  const log = new FileAuditLog(path, Date.now, { maxSize, maxFiles });
  // distinct successful events (never aggregated): about 12 times what the files may hold
  for (let n = 0; n < 20_000; n++) {
    log.emit({ event: 'bot.renew', success: true, bot_name: 'b', bot_instance_id: 'i', n });
    if (n % 50 === 49) await turn();
  }
  // tctl audit ls reads across the rotated files, newest first (1000 lines of ~170 bytes: fewer than
  // the four files hold, and more than one file does)
  const recent = await log.recent(1000);
  assert.deepEqual(
    recent.map((e) => e.n),
    Array.from({ length: 1000 }, (_, i) => 19_999 - i),
  );
  await log.close();
  const files = readdirSync(join(dir, 'rotate')).sort();
  assert.deepEqual(files, ['events.log', 'events.log.1', 'events.log.2', 'events.log.3']);
  for (const f of files)
    assert.ok(
      statSync(join(dir, 'rotate', f)).size <= maxSize,
      `${f} is ${statSync(join(dir, 'rotate', f)).size} bytes`,
    );
  assert.ok(totalSize('rotate') < maxSize * (maxFiles + 1), `${totalSize('rotate')} bytes in ${files.join(', ')}`);
  for (const f of files) assert.equal(statSync(join(dir, 'rotate', f)).mode & 0o777, 0o600);
  // what is kept is the newest events, each once, in order
  const kept = allLines('rotate')
    .map((l) => l.n!)
    .sort((a, b) => a - b);
  assert.equal(kept.at(-1), 19_999);
  assert.deepEqual(
    kept,
    Array.from({ length: kept.length }, (_, i) => kept[0]! + i),
  );
});

it('finding 6: several writers on one audit log (mwi start --workers) rotate it without losing or repeating a line', async () => {
  const maxSize = 32 * 1024;
  const path = join(dir, 'workers', 'events.log');
  // three threads: their own file descriptors and rotation decisions, running at the same time
  const per = 4000;
  const writers = [0, 1, 2].map(
    (i) =>
      new Worker(new URL('../helpers/audit-writer-worker.js', import.meta.url), {
        workerData: { path, from: i * per, count: per, maxSize },
      }),
  );
  await Promise.all(writers.map((w) => new Promise((r, j) => w.once('message', r).once('error', j))));
  const ns = allLines('workers')
    .map((l) => l.n!)
    .sort((x, y) => x - y);
  assert.deepEqual(
    ns,
    Array.from({ length: 3 * per }, (_, i) => i),
  );
  const files = readdirSync(join(dir, 'workers'));
  assert.ok(files.length > 10, `rotated: ${files.join(', ')}`);
  assert.ok(!files.includes('events.log.lock'), 'the rotation lock is released');
  // a writer may append a piece (a quarter of max_size) to a full file once it waited long enough
  for (const f of files)
    assert.ok(
      statSync(join(dir, 'workers', f)).size <= 3 * maxSize,
      `${f} is ${statSync(join(dir, 'workers', f)).size} bytes`,
    );
});
