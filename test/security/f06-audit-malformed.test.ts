import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FileAuditLog } from '../../src/auth/audit.js';
import { boundedLines } from '../../src/util/lines.js';

/**
 * Finding 6, the reading side: `tctl audit ls` read the audit files with readline, which builds a
 * whole line however long: one rotated file without a newline (corruption, or 600 MB written by
 * anyone who can write there) grew the Auth Service by the file's size, then failed with "Invalid
 * string length" and left the request unanswered. Lines are now read in bounded chunks and an
 * over-long one is skipped.
 */
describe('finding 6: audit files are read with bounded memory', () => {
  it('finding 6: boundedLines splits across chunks, skips over-long lines whole and keeps the last line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mwi-lines-'));
    try {
      const file = join(dir, 'f');
      writeFileSync(file, `a\n${'x'.repeat(50)}\nbb\n\n${'y'.repeat(7)}\nlast`);
      const fh = await open(file, 'r');
      const got: string[] = [];
      for await (const l of boundedLines(fh, 10, 4)) got.push(l);
      await fh.close();
      assert.deepEqual(got, ['a', 'bb', '', 'y'.repeat(7), 'last']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('finding 6: a 64 MB rotated file without a newline neither fails nor fills memory; the events around it are read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mwi-audit-big-'));
    try {
      const path = join(dir, 'events.log');
      const log = new FileAuditLog(path, Date.now, { maxSize: 1024 * 1024, maxFiles: 3 });
      log.emit({ event: 'auth.start', success: true });
      await log.recent(1); // written
      // a rotated file that is one 64 MB "line", then an older one with a real event
      writeFileSync(`${path}.1`, Buffer.alloc(64 * 1024 * 1024, 0x41));
      writeFileSync(
        `${path}.2`,
        `${JSON.stringify({ event: 'lock.created', success: true, time: '2026-01-01T00:00:00Z' })}\n`,
      );
      const rssBefore = process.memoryUsage().rss;
      const events = await log.recent(10);
      const grew = process.memoryUsage().rss - rssBefore;
      assert.deepEqual(
        events.map((e) => e.event),
        ['auth.start', 'lock.created'],
      );
      assert.ok(grew < 32 * 1024 * 1024, `reading grew the process by ${Math.round(grew / 1e6)} MB`);
      await log.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
