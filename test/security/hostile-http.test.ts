import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { exited, spawnCli, waitFor } from '../helpers/procs.js';
import { collect, openRaw, rawGet, type RawResult, type RawTarget } from '../helpers/raw-http.js';
import { freePort } from '../helpers/sshd.js';

/**
 * Issue #9: a hostile-HTTP corpus run against every listener (the Auth Service's TLS port and
 * tbot's --diag-addr). Whatever a case sends, the listener answers it with a 4xx or closes the
 * connection, never a 5xx, and afterwards the process is alive and answers a normal request.
 */
const H = 'Host: x\r\n';
const post = (path: string, body: string | Buffer, extra = '') =>
  Buffer.concat([
    Buffer.from(
      `POST ${path} HTTP/1.1\r\n${H}Content-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n`,
    ),
    Buffer.isBuffer(body) ? body : Buffer.from(body),
  ]);
const get = (target: string, extra = '') => `GET ${target} HTTP/1.1\r\n${H}${extra}Connection: close\r\n\r\n`;

interface Case {
  name: string;
  send: string | Buffer | Array<string | Buffer>;
  /** Also end our side after sending (a half-closed client). */
  halfClose?: boolean;
}

const routes = ['/v1/join', '/v1/join/challenge', '/v1/renew', '/v1/certs', '/v1/heartbeat', '/v1/admin/bots'];
const bodies: Array<[string, string | Buffer]> = [
  ['not JSON', 'hello'],
  ['JSON null', 'null'],
  ['JSON array', '[]'],
  ['JSON string', '"x"'],
  ['JSON number', '1e999'],
  ['deeply nested arrays', '['.repeat(60_000)],
  ['deeply nested objects', '{"a":'.repeat(12_000) + '1' + '}'.repeat(12_000)],
  [
    '__proto__ keys',
    '{"__proto__":{"admin":true},"constructor":{"prototype":{"x":1}},"token":"x","join_method":"token"}',
  ],
  ['wrong types', '{"token":123,"join_method":["token"],"public_key":{},"payload":"x","ttl_seconds":"NaN"}'],
  ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0xc0, 0x80, 0x22, 0x3a, 0x31, 0x7d])],
  ['token with path characters', '{"token":"../../x/%00","join_method":"bound_keypair"}'],
  ['huge token', JSON.stringify({ token: 'x'.repeat(60_000), join_method: 'token' })],
];

const CORPUS: Case[] = [
  // request lines and targets
  ...[
    '//[',
    'http://[x/',
    '//[::1',
    '*',
    'http://evil.example/v1/ping',
    'https://a:b@[/x',
    '/v1/%zz%ff',
    '/v1/admin/resources/%E0%A4%A',
    '/v1/admin/resources/role/%',
    '/%00',
    `/${'a'.repeat(15_000)}`,
    '/v1/ping?%zz=%zz&&&=',
    '/../../etc/passwd',
    '/v1/ping#frag',
  ].map((t): Case => ({ name: `target ${t.slice(0, 40)}`, send: get(t) })),
  { name: 'target over the header size limit', send: get(`/${'a'.repeat(70_000)}`) },
  { name: 'NUL byte in the target', send: `GET /v1/ping\0x HTTP/1.1\r\n${H}\r\n` },
  { name: 'NUL byte in a header', send: `GET /v1/ping HTTP/1.1\r\n${H}x-a: b\0c\r\n\r\n` },
  { name: 'unknown HTTP version', send: `GET /v1/ping HTTP/9.9\r\n${H}\r\n` },
  { name: 'HTTP/1.0 without Host', send: 'GET /v1/ping HTTP/1.0\r\n\r\n' },
  { name: 'HTTP/1.1 without Host', send: 'GET /v1/ping HTTP/1.1\r\nConnection: close\r\n\r\n' },
  { name: 'HTTP/0.9 style', send: 'GET /\r\n\r\n' },
  { name: 'garbage line', send: 'GARBAGE\r\n\r\n' },
  { name: 'binary garbage', send: Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131 + 7) % 256)) },
  { name: 'empty lines only', send: '\r\n\r\n\r\n\r\n' },
  { name: 'lowercase method', send: `get /v1/ping HTTP/1.1\r\n${H}\r\n` },
  { name: 'spaces in the request line', send: `GET  /v1/ping  HTTP/1.1\r\n${H}\r\n` },
  // headers
  { name: 'one huge header', send: get('/v1/ping', `x-big: ${'a'.repeat(40_000)}\r\n`) },
  { name: '5000 headers', send: get('/v1/ping', 'x: y\r\n'.repeat(5000)) },
  { name: '150 small headers', send: get('/v1/ping', Array.from({ length: 150 }, (_, i) => `x-${i}: y\r\n`).join('')) },
  { name: 'header without a colon', send: get('/v1/ping', 'no-colon-here\r\n') },
  { name: 'obsolete line folding', send: get('/v1/ping', 'x-a: b\r\n  folded\r\n') },
  {
    name: 'duplicated content-length, different values',
    send: `POST /v1/join HTTP/1.1\r\n${H}Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}`,
  },
  {
    name: 'duplicated content-length, same values',
    send: `POST /v1/join HTTP/1.1\r\n${H}Content-Length: 2\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`,
  },
  {
    name: 'content-length and transfer-encoding',
    send: `POST /v1/join HTTP/1.1\r\n${H}Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
  },
  {
    name: 'transfer-encoding chunked, identity',
    send: `POST /v1/join HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n2\r\n{}\r\n0\r\n\r\n`,
  },
  {
    name: 'transfer-encoding xchunked',
    send: `POST /v1/join HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`,
  },
  {
    name: 'transfer-encoding with a leading space',
    send: `POST /v1/join HTTP/1.1\r\n${H} Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`,
  },
  { name: 'negative content-length', send: `POST /v1/join HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n{}` },
  { name: 'content-length 1e3', send: `POST /v1/join HTTP/1.1\r\n${H}Content-Length: 1e3\r\n\r\n{}` },
  {
    name: 'content-length beyond 2^64',
    send: `POST /v1/join HTTP/1.1\r\n${H}Content-Length: 99999999999999999999999\r\n\r\n{}`,
  },
  { name: 'content-length 100 MB', send: `POST /v1/join HTTP/1.1\r\n${H}Content-Length: 100000000\r\n\r\n{` },
  // methods
  { name: 'CONNECT', send: `CONNECT localhost:22 HTTP/1.1\r\n${H}\r\n` },
  { name: 'unknown method', send: `PURGE /v1/ping HTTP/1.1\r\n${H}Connection: close\r\n\r\n` },
  { name: 'TRACE', send: `TRACE /v1/ping HTTP/1.1\r\n${H}Connection: close\r\n\r\n` },
  { name: 'OPTIONS *', send: `OPTIONS * HTTP/1.1\r\n${H}Connection: close\r\n\r\n` },
  { name: 'HEAD', send: `HEAD /v1/ping HTTP/1.1\r\n${H}Connection: close\r\n\r\n` },
  { name: 'DELETE on the join route', send: `DELETE /v1/join HTTP/1.1\r\n${H}Connection: close\r\n\r\n` },
  { name: 'a 4 KiB method', send: `${'A'.repeat(4096)} /v1/ping HTTP/1.1\r\n${H}\r\n` },
  {
    name: 'upgrade to websocket',
    send: get(
      '/v1/ping',
      'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
        'Sec-WebSocket-Version: 13\r\n',
    ),
  },
  { name: 'upgrade to h2c', send: get('/v1/ping', 'Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n') },
  { name: 'expect 100-continue', send: post('/v1/join', '{}', 'Expect: 100-continue\r\n') },
  { name: 'expect something else', send: post('/v1/join', '{}', 'Expect: 999-nope\r\n') },
  // bodies
  ...routes.flatMap((route) =>
    bodies.map(([name, body]): Case => ({ name: `${route} with ${name}`, send: post(route, body) })),
  ),
  {
    name: 'body longer than content-length (smuggled request after it)',
    send:
      `POST /v1/join HTTP/1.1\r\n${H}Content-Length: 2\r\n\r\n{}GET /v1/ping HTTP/1.1\r\n` +
      `${H}Connection: close\r\n\r\n`,
  },
  {
    name: 'body shorter than content-length, then the client half-closes',
    send: `POST /v1/join HTTP/1.1\r\n${H}Content-Length: 50\r\n\r\n{"token":`,
    halfClose: true,
  },
  {
    name: 'chunked garbage',
    send: `POST /v1/join HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nnot hex\r\n0\r\n\r\n`,
  },
  {
    name: 'chunk larger than announced',
    send: `POST /v1/join HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n2\r\n{"a":1}\r\n0\r\n\r\n`,
  },
  {
    name: 'chunk size beyond 2^64',
    send: `POST /v1/join HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n{}\r\n0\r\n\r\n`,
  },
  {
    name: 'chunked body over 64 KiB',
    send: [
      `POST /v1/join HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n`,
      ...Array.from({ length: 20 }, () => `1000\r\n${'a'.repeat(4096)}\r\n`),
      '0\r\n\r\n',
    ],
  },
  {
    name: 'chunk extensions galore',
    send: `POST /v1/join HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n2;${'a=b;'.repeat(5000)}\r\n{}\r\n0\r\n\r\n`,
  },
  {
    name: 'trailers',
    send:
      `POST /v1/join HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n` +
      `x-trailer: ${'t'.repeat(30_000)}\r\n\r\n`,
  },
  // pipelining and half-open
  {
    name: 'three pipelined pings then garbage',
    send: `GET /v1/ping HTTP/1.1\r\n${H}\r\n`.repeat(3) + 'GARBAGE\r\n\r\n',
  },
  {
    name: 'twenty pipelined requests of mixed kinds',
    send: Array.from({ length: 20 }, (_, i) =>
      i % 3 === 0
        ? `GET //[ HTTP/1.1\r\n${H}\r\n`
        : i % 3 === 1
          ? `POST /v1/join HTTP/1.1\r\n${H}Content-Length: 5\r\n\r\nhello`
          : `GET /v1/ping HTTP/1.1\r\n${H}\r\n`,
    ).join(''),
  },
  { name: 'half a request line, then the client half-closes', send: 'GET /v1/pi', halfClose: true },
  {
    name: 'headers without the final blank line, then the client half-closes',
    send: `GET /v1/ping HTTP/1.1\r\n${H}`,
    halfClose: true,
  },
  { name: 'nothing, then the client half-closes', send: [], halfClose: true },
];

async function runCase(t: RawTarget, c: Case): Promise<RawResult> {
  const s = await openRaw(t);
  return collect(
    s,
    () => {
      for (const b of Array.isArray(c.send) ? c.send : [c.send]) s.write(b);
      if (c.halfClose) s.end();
    },
    2500,
  );
}

/** Runs the corpus (in batches, concurrently) and checks every answer; returns the texts by case. */
async function runCorpus(t: RawTarget, alive: () => void): Promise<void> {
  const failures: string[] = [];
  for (let i = 0; i < CORPUS.length; i += 16) {
    const batch = CORPUS.slice(i, i + 16);
    const results = await Promise.all(
      batch.map((c) =>
        runCase(t, c).catch((err: Error) => ({
          text: `(connect failed: ${err.message})`,
          status: undefined,
          closed: true,
        })),
      ),
    );
    results.forEach((r, j) => {
      const codes = [...r.text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
      if (codes.some((s) => s >= 500)) failures.push(`${batch[j]!.name}: ${r.text.slice(0, 300)}`);
      if (r.text.startsWith('(connect failed')) failures.push(`${batch[j]!.name}: ${r.text}`);
    });
    alive();
  }
  assert.deepEqual(failures, [], 'no 5xx and no refused connection for any case');
}

describe('hostile-HTTP corpus against the Auth Service TLS port', () => {
  let c: TestCluster;
  before(async () => {
    // no rate limit here: the corpus is about what each request does, not how many there are
    c = await startCluster('hostile.example', 'connection_limits:\n  rates: []\n');
  });
  after(async () => c?.stop());

  it(`hostile HTTP: ${CORPUS.length} malformed requests, none answered 5xx, and the Auth Service still answers`, async () => {
    const t = { addr: c.addr, tls: true };
    await runCorpus(t, () => assert.equal(c.proc.exitCode, null, 'mwi start is running'));
    const r = await rawGet(t, '/v1/ping');
    assert.equal(r.status, 200);
    const unexpected = c.proc
      .out()
      .split('\n')
      .filter((l) => /unexpected error|uncaught|unhandled/i.test(l));
    assert.deepEqual(unexpected, [], 'nothing in the corpus is an unexpected error');
    // and it still does its job: a bot joins and gets credentials
    const token = await c.addBot('after-corpus', ['deploy']);
    const tbot = spawnCli('tbot', [
      'start',
      ...tbotFlags(c, token, join(c.dir, 'bot'), join(c.dir, 'out')),
      '--oneshot',
    ]);
    assert.equal(await exited(tbot, 30_000), 0, tbot.out());
  });
});

describe('hostile-HTTP corpus against tbot --diag-addr', () => {
  let c: TestCluster;
  before(async () => {
    c = await startCluster('hostile-diag.example');
  });
  after(async () => c?.stop());

  it(`hostile HTTP: the same ${CORPUS.length} requests to a tbot daemon's diagnostics port, none answered 5xx, and tbot keeps renewing`, async () => {
    const token = await c.addBot('diag-corpus', ['deploy']);
    const port = await freePort();
    const tbot = spawnCli('tbot', [
      'start',
      ...tbotFlags(c, token, join(c.dir, 'dbot'), join(c.dir, 'dout')),
      '--certificate-ttl',
      '30s',
      '--renewal-interval',
      '2s',
      '--diag-addr',
      `127.0.0.1:${port}`,
    ]);
    try {
      await waitFor('diagnostics', () => /diagnostics listening/.test(tbot.out()), 20_000);
      const t = { addr: `127.0.0.1:${port}`, tls: false };
      await runCorpus(t, () => assert.equal(tbot.exitCode, null, 'tbot is running'));
      assert.equal((await rawGet(t, '/livez')).status, 200);
      const n = (tbot.out().match(/renewed identity/g) ?? []).length;
      await waitFor(
        'a renewal after the corpus',
        () => (tbot.out().match(/renewed identity/g) ?? []).length > n,
        15_000,
      );
      assert.doesNotMatch(tbot.out(), /unexpected error|uncaught|unhandled/i);
    } finally {
      if (tbot.exitCode === null) tbot.kill('SIGTERM');
      await exited(tbot);
    }
  });
});
