import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { CLI_DIR, exited, run, spawnCli, tempDir, waitFor } from '../helpers/procs.js';
import { guardRequests } from '../../src/util/http-guard.js';
import type { Logger } from '../../src/util/log.js';
import { rawGet, rawHeader, rawJson, rawRequest, type RawTarget } from '../helpers/raw-http.js';
import { freePort } from '../helpers/sshd.js';

/** The request targets that made `new URL()` throw outside the router's try (issue #9, finding 1). */
const CRASHERS = ['//[', 'http://[x/', '//[::1', 'http://%zz/', 'https://a:b@[/x'];

const line = (target: string) => `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`;

async function assertStillServes(
  t: RawTarget,
  path: string,
  proc: { exitCode: number | null; signalCode: NodeJS.Signals | null },
) {
  const r = await rawGet(t, path);
  assert.equal(r.status, 200, `a normal request after the hostile ones: ${r.text}`);
  assert.equal(proc.exitCode, null, 'the process is still running');
  assert.equal(proc.signalCode, null, 'the process is still running');
}

describe('finding 1: one request crashes the Auth Service', () => {
  let c: TestCluster;
  before(async () => {
    c = await startCluster('f01.example');
  });
  after(async () => c?.stop());

  it('finding 1: GET //[ and GET http://[x/ over TLS without a client certificate are answered 4xx and the process keeps serving', async () => {
    const t = { addr: c.addr, tls: true };
    for (const target of CRASHERS) {
      const r = await rawRequest(t, line(target));
      assert.ok(r.status !== undefined && r.status >= 400 && r.status < 500, `${target}: ${r.text || '(no answer)'}`);
      assert.equal(rawJson(r).error.code, r.status === 404 ? 'NOT_FOUND' : 'BAD_REQUEST');
    }
    await assertStillServes(t, '/v1/ping', c.proc);
    assert.doesNotMatch(c.proc.out(), /TypeError|ERR_INVALID_URL/, 'nothing reached the process level');
  });

  it('finding 1: the same requests on a kept-alive connection, one after another, all answered', async () => {
    const t = { addr: c.addr, tls: true };
    const keep = (target: string) => `GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`;
    const r = await rawRequest(t, [...CRASHERS.map(keep), line('/v1/ping')]);
    assert.equal((r.text.match(/HTTP\/1\.1 \d{3} /g) ?? []).length, CRASHERS.length + 1, r.text);
    assert.match(r.text, /HTTP\/1\.1 200[\s\S]*cluster_name/);
    await assertStillServes(t, '/v1/ping', c.proc);
  });
});

describe('finding 1: with --workers 2, hostile requests keep no worker down', () => {
  let c: TestCluster;
  before(async () => {
    c = await startCluster('f01w.example', undefined, ['--workers', '2']);
  });
  after(async () => c?.stop());

  it('finding 1: 20 crashing requests across both workers, then every request still answered and no worker restarted', async () => {
    const t = { addr: c.addr, tls: true };
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => rawRequest(t, line(CRASHERS[i % CRASHERS.length]!))),
    );
    for (const r of answers) assert.ok(r.status !== undefined && r.status < 500, r.text || '(no answer)');
    for (let i = 0; i < 6; i++) await assertStillServes(t, '/v1/ping', c.proc);
    assert.doesNotMatch(c.proc.out(), /auth worker exited/);
  });
});

describe('finding 1: one local request kills a tbot daemon (--diag-addr)', () => {
  let c: TestCluster;
  before(async () => {
    c = await startCluster('f01t.example');
  });
  after(async () => c?.stop());

  it('finding 1: GET //[ to the diagnostics port is answered and tbot keeps running and renewing', async () => {
    const token = await c.addBot('diag', ['deploy']);
    const port = await freePort();
    const tbot = spawnCli('tbot', [
      'start',
      ...tbotFlags(c, token, join(c.dir, 'bot'), join(c.dir, 'out')),
      '--certificate-ttl',
      '30s',
      '--renewal-interval',
      '1s',
      '--diag-addr',
      `127.0.0.1:${port}`,
    ]);
    try {
      await waitFor('diagnostics', () => /diagnostics listening/.test(tbot.out()), 20_000);
      const t = { addr: `127.0.0.1:${port}`, tls: false };
      for (const target of CRASHERS) {
        const r = await rawRequest(t, line(target));
        assert.ok(r.status !== undefined && r.status >= 400 && r.status < 500, `${target}: ${r.text || '(no answer)'}`);
      }
      await assertStillServes(t, '/livez', tbot);
      const n = (tbot.out().match(/renewed identity/g) ?? []).length;
      await waitFor(
        'a renewal after the hostile requests',
        () => (tbot.out().match(/renewed identity/g) ?? []).length > n,
        15_000,
      );
    } finally {
      if (tbot.exitCode === null) tbot.kill('SIGTERM');
      await exited(tbot);
    }
  });
});

describe('finding 1: one guarded dispatch for every listener', () => {
  const captured: Array<{ msg: string; fields: Record<string, unknown> }> = [];
  const log: Logger = {
    debug: () => {},
    info: () => {},
    warn: (msg, fields = {}) => void captured.push({ msg, fields }),
    error: (msg, fields = {}) => void captured.push({ msg, fields }),
  };
  let server: Server;
  let addr: string;
  before(async () => {
    server = createServer(
      guardRequests((req, res) => {
        if (req.url === '/sync') throw new TypeError('secret detail sync');
        if (req.url === '/async') return Promise.reject(new Error('secret detail async'));
        if (req.url === '/late') {
          res.writeHead(200, { 'content-length': '100' });
          res.write('partial');
          return Promise.reject(new Error('after headers'));
        }
        res.end('ok');
      }, log),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    addr = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  for (const path of ['/sync', '/async']) {
    it(`finding 1: a handler that ${path === '/sync' ? 'throws' : 'rejects'} answers 500 INTERNAL with the request id in the body, the header and the log`, async () => {
      captured.length = 0;
      const r = await rawGet({ addr, tls: false }, path);
      assert.equal(r.status, 500);
      const body = rawJson(r);
      const id = rawHeader(r, 'x-request-id');
      assert.match(id ?? '', /^[0-9a-f]{32}$/);
      assert.deepEqual(body, { error: { code: 'INTERNAL', message: 'internal error', request_id: id } });
      assert.doesNotMatch(r.text, /secret detail/, 'the detail never crosses the wire');
      const entry = captured.find((e) => e.fields.request_id === id);
      assert.ok(entry, 'logged with the same id');
      assert.match(String(entry.fields.error), /secret detail[\s\S]*\n\s+at /, 'logged with the stack');
      assert.equal((await rawGet({ addr, tls: false }, '/ok')).status, 200);
    });
  }

  it('finding 1: a failure after the headers went out destroys the connection instead of finishing a half answer', async () => {
    const r = await rawGet({ addr, tls: false }, '/late');
    assert.equal(r.status, 200);
    assert.ok(r.closed, 'the connection was closed');
    assert.ok(!r.text.includes('internal error'), 'no second answer appended');
    assert.ok(r.text.endsWith('partial'), 'the short body is visible as short (content-length 100)');
    assert.equal((await rawGet({ addr, tls: false }, '/ok')).status, 200);
  });
});

describe('finding 1: process-level guards (mwi start, tbot start)', () => {
  it('finding 1: an unhandled rejection and an uncaught exception from a request are logged with their stack and the process keeps serving; one outside any request exits 1', async () => {
    const tmp = tempDir('f01-guard');
    try {
      const util = resolve(CLI_DIR, '../util');
      const script = join(tmp.path, 'guarded.mjs');
      writeFileSync(
        script,
        `import { createServer } from 'node:http';
import { installProcessGuards } from ${JSON.stringify(join(util, 'process-guard.js'))};
import { guardRequests } from ${JSON.stringify(join(util, 'http-guard.js'))};
import { createLogger } from ${JSON.stringify(join(util, 'log.js'))};
const log = createLogger('t');
installProcessGuards(log);
Promise.reject(new Error('stray rejection'));
const server = createServer(guardRequests((req, res) => {
  setTimeout(() => { throw new Error('late throw in a request'); }, 1);
  res.end('ok');
}, log));
server.listen(0, '127.0.0.1', async () => {
  const url = 'http://127.0.0.1:' + server.address().port + '/';
  for (let i = 0; i < 2; i++) { await (await fetch(url)).text(); await new Promise((r) => setTimeout(r, 20)); }
  process.stdout.write('still serving\\n');
  setTimeout(() => { throw new Error('broken state outside any request'); }, 20);
});
`,
      );
      const r = await run(process.execPath, [script], { timeoutMs: 15_000 });
      assert.match(r.stderr, /ERROR.*unhandled promise rejection \(kept serving\).*stray rejection.*\\n\s+at /);
      assert.equal(
        (r.stderr.match(/uncaught exception while serving a request \(kept serving\) request_id=[0-9a-f]{32}/g) ?? [])
          .length,
        2,
        r.stderr,
      );
      assert.match(r.stdout, /still serving/);
      assert.match(
        r.stderr,
        /ERROR.*uncaught exception outside any request; exiting.*broken state outside any request/,
      );
      assert.equal(r.code, 1);
    } finally {
      tmp.cleanup();
    }
  });
});

describe('finding 1: the Auth Service names every answer', () => {
  it('finding 1: an error answer from the Auth Service carries x-request-id', async () => {
    const c = await startCluster('f01id.example');
    try {
      const r = await rawGet({ addr: c.addr, tls: true }, '/v1/nonexistent');
      assert.equal(r.status, 404);
      assert.match(rawHeader(r, 'x-request-id') ?? '', /^[0-9a-f]{32}$/);
    } finally {
      await c.stop();
    }
  });
});
