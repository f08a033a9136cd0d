import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, it } from 'node:test';
import { SqliteBackend } from '../../src/storage/sqlite.js';
import { fakeClock } from '../helpers/clock.js';

const dir = mkdtempSync(join(tmpdir(), 'mwi-f06-purge-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const ROWS = 50_000;
const BOUND_MS = 20;

it(`finding 6: purging ${ROWS} expired rows never blocks the event loop for more than ${BOUND_MS} ms`, async () => {
  const clock = fakeClock();
  const b = new SqliteBackend(join(dir, 'purge.db'), clock.now);
  try {
    // what a flood of challenges leaves behind: many short-lived rows (and their change log)
    for (let i = 0; i < ROWS; i += 1000) {
      await Promise.all(
        Array.from({ length: 1000 }, (_, j) =>
          b.put(`/challenges/${i + j}`, 'x'.repeat(200), { expires: clock.now() + 60_000 }),
        ),
      );
    }
    await b.put('/kept', 'forever');
    await b.put('/kept-later', 'soon', { expires: clock.now() + 60 * 60_000 });
    // past the challenges' expiry and the change log's retention (10 minutes)
    clock.advance(11 * 60_000);

    // a stall is a gap between two ticks of a 1 ms timer; what this process spent on the CPU in
    // that gap tells its own work apart from a busy machine not scheduling it
    let last = { wall: performance.now(), cpu: process.cpuUsage() };
    let worst = 0;
    let worstWall = 0;
    const ticker = setInterval(() => {
      const now = { wall: performance.now(), cpu: process.cpuUsage() };
      const wall = now.wall - last.wall;
      const cpu = (now.cpu.user - last.cpu.user + now.cpu.system - last.cpu.system) / 1000;
      worst = Math.max(worst, Math.min(wall, cpu));
      worstWall = Math.max(worstWall, wall);
      last = now;
    }, 1);
    await new Promise((r) => setTimeout(r, 20));
    worst = 0;
    worstWall = 0;
    last = { wall: performance.now(), cpu: process.cpuUsage() };
    const removed = await b.purgeExpired();
    await new Promise((r) => setTimeout(r, 10));
    clearInterval(ticker);

    assert.equal(removed, ROWS);
    assert.equal((await b.get('/kept'))?.value, 'forever');
    assert.equal((await b.get('/kept-later'))?.value, 'soon');
    assert.deepEqual(await b.range('/challenges/', { limit: 1 }), []);
    assert.ok(
      worst <= BOUND_MS,
      `the event loop stood still for ${worst.toFixed(1)} ms of this process's work during the purge ` +
        `(${worstWall.toFixed(1)} ms of wall time)`,
    );
  } finally {
    await b.close();
  }
});
