import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FileAuditLog } from '../../src/auth/audit.js';
import { SplitAuditLog } from '../../src/auth/audit-split.js';
import { fakeClock } from '../helpers/clock.js';

/**
 * Finding 6, the audit trail: refusals that vary (token names, source addresses) cannot be
 * aggregated, so an anonymous flood from many addresses filled the one audit log and its rotation
 * deleted the oldest files: the record of issued credentials and locks went with them. Refused
 * joins and challenges now rotate in a file of their own.
 */
describe('finding 6: an anonymous flood rotates away only refusals', () => {
  it('finding 6: 20,000 distinct refused joins leave every lock and join event in the main log', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mwi-audit-split-'));
    try {
      const { now } = fakeClock(Date.parse('2026-01-01T00:00:00Z'), { step: 1 });
      const opts = { maxSize: 64 * 1024, maxFiles: 2 };
      const log = new SplitAuditLog(
        new FileAuditLog(join(dir, 'events.log'), now, opts),
        new FileAuditLog(join(dir, 'refusals.log'), now, opts),
      );
      log.emit({ event: 'lock.created', success: true, resource: 'lock/evidence' });
      log.emit({ event: 'bot.join', success: true, bot_name: 'robot', bot_instance_id: 'i-1' });
      for (let i = 0; i < 20_000; i++) {
        log.emit({
          event: i % 2 ? 'bot.join' : 'bot.challenge',
          success: false,
          token_fingerprint: `hmac:${i}`,
          remote_addr: `10.0.${i >> 8}.${i & 255}`,
          reason: 'token not found',
        });
        if (i % 500 === 0) await new Promise((r) => setImmediate(r));
      }
      log.emit({ event: 'bot.renew', success: false, bot_name: 'robot', reason: 'generation mismatch' });
      const recent = await log.recent(5);
      assert.equal(recent[0]!.event, 'bot.renew', 'newest first, across both files');
      const main = readFileSync(join(dir, 'events.log'), 'utf8');
      assert.match(main, /lock\/evidence/);
      assert.match(main, /"event":"bot.join","success":true/);
      assert.ok(existsSync(join(dir, 'refusals.log.2')), 'the refusals rotated');
      assert.ok(!existsSync(join(dir, 'events.log.1')), 'the main log did not');
      const all = await log.recent(100_000);
      assert.ok(all.some((e) => e.event === 'lock.created'));
      await log.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
