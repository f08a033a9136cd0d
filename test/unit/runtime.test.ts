import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { IntervalRunner, Mutex } from '../../src/agent/runtime.js';
import { createLogger } from '../../src/util/log.js';

const log = createLogger('test', 'error');

describe('IntervalRunner', () => {
  it('stops promptly when aborted while the job runs (no lost wake-up)', { timeout: 5000 }, async () => {
    const ac = new AbortController();
    const r = new IntervalRunner(
      async () => {
        ac.abort();
      },
      { name: 'job', intervalMs: 60_000, retry: { initialMs: 1000, maxMs: 1000 }, log },
    );
    const t0 = Date.now();
    await r.run(ac.signal);
    assert.ok(Date.now() - t0 < 1000);
  });

  it('retries failures with doubling delays up to the cap, then reports healthy', async () => {
    const ac = new AbortController();
    const times: number[] = [];
    let calls = 0;
    const r = new IntervalRunner(
      async () => {
        times.push(Date.now());
        if (++calls <= 3) throw new Error('down');
        ac.abort();
      },
      { name: 'job', intervalMs: 60_000, retry: { initialMs: 20, maxMs: 50 }, log },
    );
    await r.run(ac.signal);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    assert.equal(gaps.length, 3);
    assert.ok(gaps[0]! >= 18 && gaps[1]! >= 38 && gaps[2]! >= 48 && gaps[2]! < 200, JSON.stringify(gaps));
    assert.equal(r.health.status, 'healthy');
  });

  it('trigger() runs the job now instead of waiting the interval', async () => {
    const ac = new AbortController();
    let calls = 0;
    const r = new IntervalRunner(
      async () => {
        if (++calls === 2) ac.abort();
      },
      { name: 'job', intervalMs: 60_000, retry: { initialMs: 10, maxMs: 10 }, log },
    );
    const done = r.run(ac.signal);
    await new Promise((res) => setTimeout(res, 20));
    r.trigger();
    await done;
    assert.equal(calls, 2);
  });
});

it('Mutex runs callers one at a time in order', async () => {
  const m = new Mutex();
  const order: string[] = [];
  await Promise.all(
    ['a', 'b', 'c'].map((n, i) =>
      m.run(async () => {
        order.push(`${n}+`);
        await new Promise((r) => setTimeout(r, 10 - i * 3));
        order.push(`${n}-`);
      }),
    ),
  );
  assert.deepEqual(order, ['a+', 'a-', 'b+', 'b-', 'c+', 'c-']);
});
