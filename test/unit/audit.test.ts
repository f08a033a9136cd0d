import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { FileAuditLog } from '../../src/auth/audit.js';

const dir = mkdtempSync(join(tmpdir(), 'mwi-audit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const size = (path: string) => {
  try {
    return statSync(path).size;
  } catch {
    return 0; // the stream opens the file asynchronously
  }
};
const lines = (path: string) =>
  readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { event: string; n: number });

it('audit: events of one turn go out together, whole lines, in order; recent() sees them at once', async () => {
  const path = join(dir, 'events.log');
  const log = new FileAuditLog(path);
  for (let n = 0; n < 3; n++) log.emit({ event: 'bot.renew', success: true, n });
  // emit never writes on the spot (no file I/O on the caller's turn of the event loop)
  assert.equal(size(path), 0);
  // a reader does not wait for that turn
  assert.deepEqual(
    (await log.recent(10)).map((e) => e.n),
    [2, 1, 0],
  );
  for (let n = 3; n < 2000; n++) log.emit({ event: 'bot.join', success: true, n, padding: 'x'.repeat(100) });
  await new Promise((r) => setImmediate(r));
  await log.close();
  const written = lines(path);
  assert.deepEqual(
    written.map((e) => e.n),
    Array.from({ length: 2000 }, (_, n) => n),
    'every event once, in order (including the ones over 64 KiB in one turn)',
  );
  assert.equal(statSync(path).mode & 0o777, 0o600);
});

it('audit: events emitted just before close are written', async () => {
  const path = join(dir, 'close.log');
  const log = new FileAuditLog(path);
  log.emit({ event: 'auth.start', success: true, n: 1 });
  await log.close();
  assert.deepEqual(
    lines(path).map((e) => e.event),
    ['auth.start'],
  );
});
