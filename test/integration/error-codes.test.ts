import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { ERROR_CODES, type ErrorCode } from '../../src/errors.js';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { cli, type RunResult } from '../helpers/procs.js';
import { anonymousCall } from '../helpers/raw-api.js';
import { freePort } from '../helpers/sshd.js';

const DOC = resolve(dirname(fileURLToPath(import.meta.url)), '../../../docs/errors.md');

/** docs/errors.md's table: code -> HTTP status and exit code. */
function docTable(): Map<string, { http: number; exit: number }> {
  const rows = [...readFileSync(DOC, 'utf8').matchAll(/^\| `([A-Z_]+)` \| (\d+) \| (\d+) \|/gm)];
  return new Map(rows.map((m) => [m[1]!, { http: Number(m[2]), exit: Number(m[3]) }]));
}

/** How a code is met: a real command that ends with it (and what it says), or a reason none does. */
type Producer =
  | { run: () => Promise<RunResult>; says: RegExp }
  | { http: () => Promise<{ status: number; code: string }>; why: string }
  | { none: string };

/**
 * Walks docs/errors.md against the real programs: for each code of its table a command that ends
 * with it, whose exit code must be the table's (issue #12, item 9).
 */
describe('docs/errors.md, walked against mwi, tctl and tbot', () => {
  let c: TestCluster;
  let limited: TestCluster;
  let n = 0;
  const dir = () => join(c.dir, `walk-${++n}`);
  before(async () => {
    c = await startCluster('codes.example');
    // one unauthenticated request per source, then one every second
    limited = await startCluster(
      'limited.example',
      'connection_limits:\n  rates:\n    - { period: 1s, average: 1, burst: 1 }\n',
    );
  });
  after(async () => {
    await c?.stop();
    await limited?.stop();
  });

  /** A bot joined once with a one-shot tbot; returns the flags that run it again on the same storage. */
  const joined = async (bot: string) => {
    const token = await c.addBot(bot, ['deploy']);
    const d = dir();
    const flags = [...tbotFlags(c, token, join(d, 'storage'), join(d, 'out')), '--oneshot'];
    const first = await cli('tbot', ['start', ...flags]);
    assert.equal(first.code, 0, first.stderr);
    return { token, flags, out: join(d, 'out') };
  };

  const PRODUCERS: Record<ErrorCode, Producer> = {
    BAD_CONFIG: {
      run: () => c.tctl(['tokens', 'add', '--type=bot', '--bot-name', 'robot', '--ttl', '5x']),
      says: /--ttl: expected a duration/,
    },
    BAD_REQUEST: {
      // the Auth Service checks a chosen secret's length: tctl cannot know the method's rule
      run: () => c.tctl(['tokens', 'add', '--type=bot', '--bot-name', 'robot', '--value', 'short']),
      says: /a join secret must be at least 16 characters/,
    },
    NOT_FOUND: { run: () => c.tctl(['get', 'bot/nosuch']), says: /bot "nosuch" not found/ },
    ALREADY_EXISTS: {
      run: async () => {
        const f = join(c.dir, 'role-dup.yaml');
        writeFileSync(f, 'kind: role\nversion: v7\nmetadata: { name: dup }\nspec: {}\n');
        await c.tctlOk(['create', f]);
        return c.tctl(['create', f]);
      },
      says: /role "dup" already exists/,
    },
    COMPARE_FAILED: {
      none:
        'a conditional write that lost a race to another writer of the same resource: no command loses one on ' +
        'demand (storage conformance tests produce it)',
    },
    ACCESS_DENIED: {
      // a bot's identity file is no admin identity
      run: async () => {
        const { out } = await joined('not-admin');
        return cli('tctl', ['--auth-server', c.addr, '--identity', join(out, 'identity'), 'status']);
      },
      says: /the admin API needs an admin identity/,
    },
    JOIN_DENIED: {
      run: async () => {
        const { flags } = await joined('used-token');
        const again = flags.map((f) => (f.endsWith('storage') ? `${f}-2` : f));
        return cli('tbot', ['start', ...again]);
      },
      says: /the join was refused/,
    },
    RENEW_DENIED: {
      run: async () => {
        const { flags } = await joined('removed');
        await c.tctlOk(['bots', 'rm', 'removed']);
        return cli('tbot', ['start', ...flags]);
      },
      says: /the bot instance no longer exists/,
    },
    LOCKED: {
      run: async () => {
        const { flags } = await joined('held');
        await c.tctlOk(['locks', 'add', '--bot', 'held', '--message', 'walk']);
        await new Promise((r) => setTimeout(r, 200)); // the lock reaches the cache
        return cli('tbot', ['start', ...flags]);
      },
      says: /is locked: walk/,
    },
    CA_PIN_MISMATCH: {
      run: async () => {
        const token = await c.addBot('pinned', ['deploy']);
        const d = dir();
        const flags = tbotFlags(c, token, join(d, 's'), join(d, 'o')).map((f) =>
          f === c.caPin ? `sha256:${'ab'.repeat(32)}` : f,
        );
        return cli('tbot', ['start', ...flags, '--oneshot']);
      },
      says: /presented no CA matching the configured CA pin/,
    },
    UNREACHABLE: {
      run: async () => {
        const port = await freePort();
        const d = dir();
        const flags = tbotFlags({ ...c, addr: `127.0.0.1:${port}` }, '0123456789abcdef0123456789abcdef', d);
        return cli('tbot', ['start', ...flags, '--oneshot']);
      },
      says: /cannot reach the Auth Service/,
    },
    RATE_LIMITED: {
      http: async () => {
        await anonymousCall(limited.addr, limited.caPin, 'GET', '/v1/ping');
        const r = await anonymousCall(limited.addr, limited.caPin, 'GET', '/v1/ping');
        return { status: r.status, code: r.json?.error?.code };
      },
      why: 'tbot and tctl wait for Retry-After and send again (up to 5 times): the answer is checked over HTTP',
    },
    STORAGE: {
      // a database written by a newer mwi: the storage refuses to open it
      run: async () => {
        const d = dir();
        const db = join(c.dir, `newer-${n}.db`);
        const sqlite = new Database(db);
        sqlite.pragma('user_version = 999');
        sqlite.close();
        return cli('mwi', ['start', '--data-dir', d, '--storage', `sqlite://${db}`, '--listen', '127.0.0.1:0']);
      },
      says: /database schema version 999 is newer than this mwi/,
    },
    INTERNAL: { none: 'an unexpected server error: a bug, which no command causes on purpose' },
  };

  it('the table has an exit code for every code, and a way to meet each one', () => {
    const table = docTable();
    assert.deepEqual([...table.keys()].sort(), Object.keys(ERROR_CODES).sort());
    for (const [code, row] of table) assert.equal(row.exit, code === 'BAD_CONFIG' ? 2 : 1, code);
    assert.deepEqual(Object.keys(PRODUCERS).sort(), [...table.keys()].sort());
  });

  for (const [code, producer] of Object.entries(PRODUCERS)) {
    it(`${code}: ${'none' in producer ? 'no command (said why)' : 'a real command meets it'}`, async () => {
      const row = docTable().get(code)!;
      if ('none' in producer) return assert.ok(producer.none.length > 0);
      if ('http' in producer) {
        const r = await producer.http();
        assert.deepEqual(r, { status: row.http, code }, producer.why);
        return;
      }
      const r = await producer.run();
      assert.equal(r.code, row.exit, `exit code of ${code} (docs/errors.md): ${r.stderr}`);
      assert.match(r.stderr, producer.says);
      assert.match(r.stderr, /^ERROR: /m);
    });
  }

  it("the issue's three: tokens add --ttl 5x, ca export --type host exit 2; get all works", async () => {
    for (const args of [
      ['tokens', 'add', '--type=bot', '--bot-name', 'robot', '--ttl', '5x'],
      ['ca', 'export', '--type', 'host'],
    ]) {
      const r = await c.tctl(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    }
    const host = await c.tctl(['ca', 'export', '--type', 'host']);
    assert.match(
      host.stderr,
      /--type: unknown CA type "host" .*"host" is Teleport's name: tctl auth export --type host/,
    );
    const all = await c.tctl(['get', 'all']);
    assert.equal(all.code, 0, all.stderr);
  });
});
