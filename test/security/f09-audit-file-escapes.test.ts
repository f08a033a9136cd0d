import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FileAuditLog } from '../../src/auth/audit.js';
import { hasUnsafeChars } from '../../src/util/text.js';

/**
 * Finding 9, the class: values an attacker chooses (an unverified JWS header's kid, claims of a
 * signed platform token) reach audit reasons and attributes. JSON escapes C0 controls but writes
 * C1 controls (U+009B is a one-character CSI) and bidi overrides raw, so `tail -f` on the audit
 * log obeyed them. Every line is now pure printable text and parses back to the same values.
 */
describe('finding 9: the audit file holds no character a terminal acts on', () => {
  it('finding 9: C0, C1 and bidi characters in audit fields are written escaped and read back unchanged', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mwi-f09-audit-'));
    try {
      const path = join(dir, 'events.log');
      const log = new FileAuditLog(path);
      const hostile = 'kid\u001b[2J\u009b31m\u202eevil\u2066x\u2028y\u0000';
      log.emit({ event: 'bot.join', success: false, reason: `malformed kid ${hostile}`, workflow: hostile });
      await log.close();
      const text = readFileSync(path, 'utf8');
      for (const line of text.split('\n'))
        assert.ok(!hasUnsafeChars(line), `raw control character in ${JSON.stringify(line)}`);
      const e = JSON.parse(text.split('\n')[0]!);
      assert.equal(e.workflow, hostile);
      assert.equal(e.reason, `malformed kid ${hostile}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
