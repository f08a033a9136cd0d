import assert from 'node:assert/strict';
import { it } from 'node:test';
import { fakeClock } from '../helpers/clock.js';

it('fakeClock: stands still until advanced; `now` works detached from the clock', () => {
  const clock = fakeClock(1000);
  const { now } = clock;
  assert.deepEqual([now(), now()], [1000, 1000]);
  clock.advance(250);
  assert.equal(now(), 1250);
  assert.equal(fakeClock().now(), 1_800_000_000_000, 'a fixed default start: runs are repeatable');
});

it('fakeClock with a step: each reading is the next time, advance still adds', () => {
  const clock = fakeClock(0, { step: 1 });
  assert.deepEqual([clock.now(), clock.now(), clock.now()], [0, 1, 2]);
  clock.advance(10);
  assert.equal(clock.now(), 13);
});
