import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { ApiClient } from '../../src/api/client.js';
import { PATHS } from '../../src/api/wire.js';
import { instanceKey } from '../../src/auth/instances.js';
import type { BotInstance } from '../../src/api/resources.js';
import { SqliteBackend } from '../../src/storage/sqlite.js';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { cli, tempDir } from '../helpers/procs.js';
import { escapeUnsafe, stripUnsafe } from '../../src/util/text.js';
import { createLogger } from '../../src/util/log.js';

// compiled to dist/test/security: the sources are at ../../../src
const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../../src');

// What a terminal may act on: C0 (but the newline that ends a line), DEL, C1, line/paragraph
// separators and the bidi controls. Written out here, not imported, so the test checks the rule
// itself and not the code under test.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** Hostile self-reported values: clear the screen, set the window title, CSI as C1, CR overwrite, RTL override. */
const HOSTILE = {
  hostname: 'evil\u001b[2J\u001b[H\u001b]0;pwned\u0007host\rOK',
  os: 'linux\u009b31m\u202eexe.txt',
  version: '1.0\u2066\u0008\u007f',
};

function assertSafe(text: string, what: string): void {
  const m = UNSAFE.exec(text);
  assert.equal(
    m,
    null,
    `${what} prints U+${m?.[0].charCodeAt(0).toString(16).padStart(4, '0')} at ${m?.index}: ` +
      `${JSON.stringify(text.slice(Math.max(0, (m?.index ?? 0) - 20), (m?.index ?? 0) + 20))}`,
  );
}

describe('finding 9: terminal escape injection through self-reported fields', () => {
  let c: TestCluster;
  let storage: { path: string; cleanup: () => void };
  let instanceId = '';
  before(async () => {
    c = await startCluster('f09.example');
    storage = tempDir('f09-storage');
    const token = await c.addBot('esc', ['nobody']);
    const r = await cli('tbot', ['start', '--oneshot', ...tbotFlags(c, token, join(storage.path, 'data'))]);
    assert.equal(r.code, 0, r.stderr);
    const state = JSON.parse(readFileSync(join(storage.path, 'data', 'state.json'), 'utf8'));
    instanceId = state.identity.instance_id;
    // the bot, with its own valid identity, reports hostile host details
    const api = new ApiClient({
      addrs: [c.addr],
      tls: { ca: state.identity.tls_ca_certs, cert: state.identity.tls_cert, key: state.identity.key },
    });
    try {
      await api.call('POST', PATHS.heartbeat, { ...HOSTILE, uptime_seconds: 1, one_shot: false });
    } finally {
      api.close();
    }
  });
  after(async () => {
    await c?.stop();
    storage?.cleanup();
  });

  /** Every tctl output that shows an instance. */
  async function everyView(): Promise<Array<[string, string]>> {
    const views: Array<[string, string]> = [];
    for (const args of [
      ['bots', 'instances', 'ls'],
      ['bots', 'instances', 'ls', 'esc'],
      ['bots', 'instances', 'ls', '--format', 'json'],
      ['get', 'bot_instances'],
      ['get', 'bot_instances', '--format', 'json'],
      ['get', `bot_instance/esc/${instanceId}`],
    ]) {
      views.push([`tctl ${args.join(' ')}`, await c.tctlOk(args)]);
    }
    return views;
  }

  it('finding 9: the Auth Service stores heartbeat fields without control or bidi characters', async () => {
    const [out] = JSON.parse(
      await c.tctlOk(['get', `bot_instance/esc/${instanceId}`, '--format', 'json']),
    ) as BotInstance[];
    const hb = out!.status.latest_heartbeats[0]!;
    assert.equal(hb.hostname, 'evil[2J[H]0;pwnedhostOK');
    assert.equal(hb.os, 'linux31mexe.txt');
    assert.equal(hb.version, '1.0');
  });

  it('finding 9: tctl bots instances ls and tctl get print no control character', async () => {
    for (const [what, text] of await everyView()) {
      assertSafe(text, what);
      assert.match(text, /evil/, what);
    }
  });

  it('finding 9: values stored with control characters (every field) are shown escaped, never raw', async () => {
    await c.halt();
    const db = new SqliteBackend(join(c.dataDir, 'mwi.db'));
    try {
      const item = (await db.get(instanceKey('esc', instanceId)))!;
      const inst = JSON.parse(item.value) as BotInstance;
      inst.status.initial_authentication.join_method = 'token\u001b[5m';
      inst.status.initial_authentication.auth_at = '2024\u001b[1A\r';
      inst.status.initial_authentication.metadata = { claim: 'x\u009b2J', '\u001b[1mkey': 'v' };
      inst.status.public_key_fingerprint = '\u202eabc';
      inst.status.latest_heartbeats = [{ ...inst.status.latest_heartbeats[0]!, ...HOSTILE, recorded_at: 'soon\u0007' }];
      await db.compareAndSwap(item.key, item.revision, JSON.stringify(inst), { expires: item.expires });
    } finally {
      await db.close();
    }
    await c.resume();
    const views = await everyView();
    for (const [what, text] of views) assertSafe(text, what);
    // JSON stays exact: the escapes are JSON's own, so a parser reads the stored value back
    const json = JSON.parse(views.find(([w]) => w === 'tctl get bot_instances --format json')![1]) as BotInstance[];
    assert.equal(
      json.find((i) => i.spec.instance_id === instanceId)!.status.latest_heartbeats[0]!.hostname,
      HOSTILE.hostname,
    );
  });

  it('finding 9: an error message quoting a value is printed without control characters', async () => {
    const file = join(c.dir, 'f09-role.yaml');
    writeFileSync(file, `kind: role\nversion: "\\e[31mv9\\u009b"\nmetadata: { name: f09 }\nspec: {}\n`);
    const r = await c.tctl(['create', '-f', file]);
    // (issue #11: a refused resource is a user error, exit 2; was 1)
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^ERROR: /);
    assertSafe(r.stderr, 'tctl create error');
  });
});

describe('finding 9: the class', () => {
  it('finding 9: no tctl file writes to stdout or stderr but tctl/output.ts', () => {
    const dir = join(SRC, 'cli', 'tctl');
    const files = [
      join(SRC, 'cli', 'tctl.ts'),
      ...readdirSync(dir)
        .filter((n) => n.endsWith('.ts'))
        .map((n) => join(dir, n)),
    ];
    for (const f of files) {
      if (f.endsWith('/output.ts')) continue;
      const text = readFileSync(f, 'utf8');
      assert.doesNotMatch(
        text,
        /process\.(stdout|stderr)\.write|console\.(log|error|warn|info)/,
        `${f} must print through tctl/output.ts`,
      );
    }
  });

  it('finding 9: a log line quoting request data holds no control character and stays one line', () => {
    const lines: string[] = [];
    // eslint-disable-next-line @typescript-eslint/unbound-method -- saved only to be put back on process.stderr
    const write = process.stderr.write;
    process.stderr.write = (chunk: string) => (lines.push(String(chunk)), true);
    try {
      createLogger('f09', 'debug').warn('join refused for \u001b]0;pwned\u0007', {
        token: 'x\u001b[2J',
        reason: 'a\u009bb c\u202e',
        n: 1,
      });
      createLogger('f09', 'debug').info('forged\n2030-01-01T00:00:00.000Z INFO  [auth] all fine');
    } finally {
      process.stderr.write = write;
    }
    for (const l of lines) {
      assert.ok(l.endsWith('\n') && l.indexOf('\n') === l.length - 1, `one line: ${JSON.stringify(l)}`);
      assertSafe(l.slice(0, -1), 'log line');
    }
    assert.match(lines[0]!, /token=x\\u001b\[2J/);
  });

  it('finding 9: every C0, DEL, C1 and bidi control is stripped and escaped; ordinary text is kept', () => {
    const controls = [
      ...Array.from({ length: 0x20 }, (_, i) => i),
      ...Array.from({ length: 0x21 }, (_, i) => 0x7f + i),
      0x061c,
      0x200e,
      0x200f,
      0x2028,
      0x2029,
      0x202a,
      0x202b,
      0x202c,
      0x202d,
      0x202e,
      0x2066,
      0x2067,
      0x2068,
      0x2069,
    ].map((c) => String.fromCharCode(c));
    for (const ch of controls) {
      assert.equal(stripUnsafe(`a${ch}b`), 'ab', `U+${ch.charCodeAt(0).toString(16)}`);
      assert.doesNotMatch(escapeUnsafe(`a${ch}b`), UNSAFE);
      assert.equal(JSON.parse(`"${escapeUnsafe(`a${ch}b`)}"`), `a${ch}b`, "the escape is JSON's own");
    }
    const plain = 'host-01.example.com Linux 6.1 v1.2.3 ünïcödé 日本 🙂';
    assert.equal(stripUnsafe(plain), plain);
    assert.equal(escapeUnsafe(plain), plain);
  });
});
