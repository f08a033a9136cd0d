import assert from 'node:assert/strict';
import { it } from 'node:test';
import { drive, pace, Pool, summarize } from '../../bench/stats.js';

it('bench Pool: take waits while every item is in use, and each item serves one task at a time', async () => {
  const pool = new Pool(['a', 'b']);
  const inUse = new Set<string>();
  let overlap = false;
  await drive(40, 8, async () => {
    const t = await pool.take();
    if (inUse.has(t)) overlap = true;
    inUse.add(t);
    await new Promise((r) => setTimeout(r, 1));
    inUse.delete(t);
    pool.give(t);
  });
  assert.equal(overlap, false);
  assert.deepEqual(pool.all().sort(), ['a', 'b']);
});

it('bench pace: open loop on schedule, latency counted from the scheduled start', async () => {
  // tasks take 30 ms: a closed loop of 1 would manage ~33/s; the open loop keeps 200/s
  const r = await pace(40, 200, () => new Promise((res) => setTimeout(res, 30)));
  const s = summarize(r.samples, r.wallMs);
  assert.equal(s.n, 40);
  assert.ok(r.wallMs < 40 * 30, `wall ${r.wallMs} ms: tasks ran one after another`);
  assert.ok(s.p50 >= 29, `p50 ${s.p50} ms is below the task time`);
  // tasks that cannot start on time (the first one blocks the event loop for 50 ms) show the
  // delay: they were due 1-4 ms in and are counted from then, not from when they got to run
  let first = true;
  const blocked = await pace(5, 1000, async () => {
    if (first) {
      first = false;
      const until = performance.now() + 50;
      while (performance.now() < until);
    }
  });
  assert.equal(blocked.samples.length, 5);
  assert.ok(
    Math.min(...blocked.samples) >= 40,
    `samples ${blocked.samples.map((x) => x.toFixed(1)).join(', ')}: the stall is not in the figures`,
  );
});
