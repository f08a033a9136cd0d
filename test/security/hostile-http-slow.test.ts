import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AuthServer } from '../../src/auth/server.js';
import { Metrics, startDiagnostics } from '../../src/agent/diagnostics.js';
import type { HttpLimits } from '../../src/util/http-limits.js';
import type { Logger } from '../../src/util/log.js';
import { tempDir } from '../helpers/procs.js';
import { collect, openRaw, rawGet, type RawTarget } from '../helpers/raw-http.js';

/**
 * Issue #9, finding 2 (slow and half-open clients), against both listeners with the limits
 * shortened so that each case takes a second or two. The real defaults are the same code path.
 */
const SHORT: Partial<HttpLimits> = {
  handshakeTimeoutMs: 600,
  headersTimeoutMs: 800,
  requestTimeoutMs: 1500,
  keepAliveTimeoutMs: 800,
  idleTimeoutMs: 3000,
  bodyTimeoutMs: 800,
  checkIntervalMs: 200,
};
const quiet: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

/** Sends `pieces` one every `everyMs`, and reports whether (and when) the server cut the connection. */
async function trickle(t: RawTarget, pieces: string[], everyMs: number, waitMs: number) {
  const s = await openRaw(t);
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const r = await collect(
    s,
    () => {
      let i = 0;
      timer = setInterval(() => {
        if (i < pieces.length && !s.destroyed) s.write(pieces[i++]!);
      }, everyMs);
    },
    waitMs,
  );
  clearInterval(timer);
  return { ...r, afterMs: Date.now() - started };
}

const headerTrickle = ['GET /v1/ping HTTP/1.1\r\n', ...Array.from({ length: 40 }, (_, i) => `x-slow-${i}: y\r\n`)];

function slowClientCases(target: () => RawTarget, name: string, tlsListener: boolean) {
  if (tlsListener) {
    it(`finding 2 (${name}): a TCP connection that never starts the TLS handshake is closed`, async () => {
      const r = await trickle({ ...target(), tls: false }, [], 1000, 5000);
      assert.ok(r.closed && r.afterMs < 3000, `closed after ${r.afterMs} ms`);
    });
  }
  it(`finding 2 (${name}): a connection that sends nothing is closed`, async () => {
    const r = await trickle(target(), [], 1000, 5000);
    assert.ok(r.closed && r.afterMs < 3500, `closed after ${r.afterMs} ms`);
  });
  it(`finding 2 (${name}): headers trickled a line every 150 ms are cut off`, async () => {
    const r = await trickle(target(), headerTrickle, 150, 6000);
    assert.ok(r.closed && r.afterMs < 4000, `closed after ${r.afterMs} ms: ${r.text}`);
    assert.ok(r.status === undefined || r.status === 408, r.text);
  });
  it(`finding 2 (${name}): an idle kept-alive connection is closed after a request`, async () => {
    const r = await trickle(target(), ['GET /v1/ping HTTP/1.1\r\nHost: x\r\n\r\n'], 10, 5000);
    assert.ok(r.closed && r.afterMs < 3500, `closed after ${r.afterMs} ms`);
  });
  it(`finding 2 (${name}): headers over the size limit are answered 431 at once`, async () => {
    const r = await rawGet(
      target(),
      `/v1/ping HTTP/1.1\r\nx-big: ${'a'.repeat(20_000)}\r\nx-end: y`.replace(' HTTP/1.1', ''),
    );
    assert.equal(r.status, 431, r.text);
  });
}

describe('finding 2: slow and half-open clients on the Auth Service', () => {
  let auth: AuthServer;
  const tmp = tempDir('slow');
  before(async () => {
    auth = await AuthServer.start({
      dataDir: tmp.path,
      listen: '127.0.0.1:0',
      clusterName: 'slow.example',
      storage: 'memory://',
      logger: quiet,
      httpLimits: SHORT,
    });
  });
  after(async () => {
    await auth?.close();
    tmp.cleanup();
  });
  slowClientCases(() => ({ addr: auth.address, tls: true }), 'Auth Service', true);

  it('finding 2 (Auth Service): a JSON body trickled a byte every 150 ms is refused and the connection closed', async () => {
    const body = JSON.stringify({ token: 'x'.repeat(40), join_method: 'token' });
    const pieces = [
      `POST /v1/join HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n`,
      ...body.split(''),
    ];
    const r = await trickle({ addr: auth.address, tls: true }, pieces, 150, 8000);
    assert.ok(r.closed && r.afterMs < 4000, `closed after ${r.afterMs} ms: ${r.text}`);
  });

  it('finding 2 (Auth Service): a body announced over 64 KiB is refused before it is read', async () => {
    const r = await trickle(
      { addr: auth.address, tls: true },
      [`POST /v1/join HTTP/1.1\r\nHost: x\r\ncontent-length: 100000000\r\n\r\n{`],
      10,
      3000,
    );
    assert.equal(r.status, 400, r.text);
    assert.match(r.text, /request body over 65536 bytes/);
  });

  it('finding 2 (Auth Service): after all that, a normal request is answered', async () => {
    assert.equal((await rawGet({ addr: auth.address, tls: true }, '/v1/ping')).status, 200);
  });
});

describe('finding 2: slow and half-open clients on tbot --diag-addr', () => {
  let diag: Awaited<ReturnType<typeof startDiagnostics>>;
  before(async () => {
    diag = await startDiagnostics('127.0.0.1:0', { services: new Map(), metrics: new Metrics() }, quiet, SHORT);
  });
  after(async () => diag?.close());
  slowClientCases(() => ({ addr: diag.address, tls: false }), 'tbot diag', false);
});
