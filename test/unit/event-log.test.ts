import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, it } from 'node:test';
import { operatorNameProblem } from '../../src/api/admin.js';
import { eventLogger } from '../../src/auth/event-log.js';
import { guardRequests } from '../../src/util/http-guard.js';
import { createLogger, envLogLevel, setLogDefaults, type Logger } from '../../src/util/log.js';

/** What `fn` writes to stderr, line by line (nothing reaches the terminal). */
async function stderrOf(fn: () => unknown): Promise<string[]> {
  const original = process.stderr.write.bind(process.stderr);
  let text = '';
  process.stderr.write = (chunk: string | Uint8Array) => {
    text += chunk.toString();
    return true;
  };
  try {
    await fn();
  } finally {
    process.stderr.write = original;
  }
  return text.split('\n').filter(Boolean);
}

/** A logger that keeps its entries. */
function recorder(): Logger & { lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }> } {
  const lines: Array<{ level: string; msg: string; fields: Record<string, unknown> }> = [];
  const at =
    (level: string) =>
    (msg: string, fields: Record<string, unknown> = {}) =>
      lines.push({ level, msg, fields });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

describe('logging (MWI_LOG_LEVEL, --log-format, request ids)', () => {
  it('a logger made before setLogDefaults follows it (module-level loggers, e.g. the audit log)', async () => {
    const early = createLogger('early');
    try {
      setLogDefaults({ format: 'json' });
      const [line] = await stderrOf(() => early.info('hello', { a: 1 }));
      const j = JSON.parse(line!);
      assert.equal(j.message, 'hello');
      assert.equal(j.component, 'early');
      assert.equal(j.a, 1);
      assert.equal(j.request_id, undefined, 'no request: no id');
    } finally {
      setLogDefaults({ format: 'text', level: 'info' });
    }
  });

  it('a line written while a request is served carries its id, the one in its x-request-id header', async () => {
    const log = createLogger('t', 'info', 'json');
    const headers: Record<string, string> = {};
    const res = {
      setHeader: (k: string, v: string) => (headers[k] = v),
    } as unknown as ServerResponse;
    const lines = await stderrOf(async () => {
      let done!: () => void;
      const finished = new Promise<void>((r) => (done = r));
      guardRequests(async () => {
        await new Promise((r) => setTimeout(r, 1));
        log.info('inside');
        done();
      }, log)({} as IncomingMessage, res);
      await finished;
    });
    const j = JSON.parse(lines[0]!);
    assert.match(j.request_id, /^[0-9a-f]{32}$/);
    assert.equal(j.request_id, headers['x-request-id']);
  });

  it('MWI_LOG_LEVEL: a level, or nothing; any other value is named', () => {
    assert.equal(envLogLevel({}), undefined);
    assert.equal(envLogLevel({ MWI_LOG_LEVEL: 'debug' }), 'debug');
    assert.throws(() => envLogLevel({ MWI_LOG_LEVEL: 'verbose' }), /^TypeError: MWI_LOG_LEVEL: expected one of debug/);
  });
});

describe('the Auth Service logs why (one line per join, challenge, renewal, lock)', () => {
  it('one INFO line per event, with its reason, and only the fields it lists', () => {
    const log = recorder();
    const events = eventLogger(log, 0);
    events.observe({
      event: 'bot.join',
      success: true,
      bot_name: 'robot',
      bot_instance_id: 'i-1',
      join_method: 'github',
      token_id: 'gh',
      matched_rule: 0,
      repository: 'acme/app',
      // a field an event should never have: the log must not repeat it
      token: 'S3CRET',
    });
    events.observe({
      event: 'bot.join',
      success: false,
      join_method: 'token',
      token_id: 'h-1',
      reason: 'token not found',
    });
    events.observe({ event: 'bot.renew', success: false, bot_name: 'robot', reason: 'locked: incident' });
    events.observe({ event: 'lock.created', success: true, resource: 'lock/l1', target: 'user:bot-x', user: 'admin' });
    events.observe({ event: 'instance.locked', success: true, bot_instance_id: 'i-2', reason: 'generation mismatch' });
    events.observe({ event: 'bot.certs', success: true });
    events.observe({ event: 'auth.start', success: true });
    assert.deepEqual(
      log.lines.map((l) => `${l.level} ${l.msg}`),
      [
        'info join accepted',
        'info join refused',
        'info renewal refused',
        'info lock created',
        'info bot instance locked by the Auth Service',
        'debug output certificates issued',
      ],
    );
    assert.deepEqual(log.lines[0]!.fields, {
      bot: 'robot',
      instance: 'i-1',
      method: 'github',
      token_id: 'gh',
      matched_rule: 0,
    });
    assert.equal(log.lines[1]!.fields.reason, 'token not found');
    assert.equal(log.lines[3]!.fields.target, 'user:bot-x');
    assert.doesNotMatch(JSON.stringify(log.lines), /S3CRET/);
  });

  it('identical refusals are logged once, then as one line with their count', async () => {
    const log = recorder();
    const events = eventLogger(log, 50);
    const refusal = { event: 'bot.join' as const, success: false, token_id: 'h-1', reason: 'token not found' };
    for (let i = 0; i < 5; i++) events.observe(refusal);
    assert.equal(log.lines.length, 1);
    await new Promise((r) => setTimeout(r, 120));
    assert.equal(log.lines.length, 2);
    assert.equal(log.lines[1]!.msg, 'join refused (repeated)');
    assert.equal(log.lines[1]!.fields.more, 4);
    events.flush();
  });
});

describe('operator names (tctl auth sign --admin --user NAME)', () => {
  it('a name that a lock can name alone: not admin, mwi or bot-*', () => {
    assert.equal(operatorNameProblem('alice'), undefined);
    assert.equal(operatorNameProblem('alice@example.com'), undefined);
    assert.match(operatorNameProblem('admin')!, /local admin identity/);
    assert.match(operatorNameProblem('mwi')!, /Auth Service itself/);
    assert.match(operatorNameProblem('bot-ci')!, /bot-NAME/);
    // reserved names in any case: "Admin" would read as the local admin identity in the audit log
    assert.match(operatorNameProblem('Admin')!, /"Admin" is the local admin identity's name/);
    assert.match(operatorNameProblem('MWI')!, /Auth Service itself/);
    assert.match(operatorNameProblem('BOT-x')!, /bot-NAME/);
    assert.equal(operatorNameProblem('Alice'), undefined);
    assert.match(operatorNameProblem('a b')!, /expected a name/);
    assert.match(operatorNameProblem('')!, /expected a name/);
  });
});
