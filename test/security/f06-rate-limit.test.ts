import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadAuthConfig } from '../../src/auth/config.js';
import { RateLimiter, RefusalSummary, sourceKey } from '../../src/auth/ratelimit.js';
import { isMwiError } from '../../src/errors.js';
import { fakeClock } from '../helpers/clock.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { tempDir } from '../helpers/procs.js';
import { collect, openRaw, rawHeader, rawJson, rawRequest, type RawTarget } from '../helpers/raw-http.js';

const ping = 'GET /v1/ping HTTP/1.1\r\nHost: x\r\n\r\n';
const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
/** `n` pipelined requests on one connection; the statuses in order. */
async function pipelined(t: RawTarget, req: string, n: number): Promise<{ statuses: number[]; text: string }> {
  const r = await rawRequest(t, req.repeat(n - 1) + req.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'), 10_000);
  return { statuses: statuses(r.text), text: r.text };
}

describe('finding 6: per-source rate limits, unit', () => {
  it('finding 6: sources are keyed by IPv4 address and by IPv6 /64 (IPv4-mapped addresses as IPv4)', () => {
    assert.equal(sourceKey('203.0.113.7'), '203.0.113.7');
    assert.equal(sourceKey('::ffff:203.0.113.7'), '203.0.113.7');
    assert.equal(sourceKey('2001:db8:1:2:aaaa::1'), sourceKey('2001:db8:1:2:ffff:ffff:ffff:fffe'));
    assert.notEqual(sourceKey('2001:db8:1:2::1'), sourceKey('2001:db8:1:3::1'));
    assert.equal(sourceKey('2001:db8::1'), '2001:db8:0:0::/64');
    assert.equal(sourceKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
    assert.equal(sourceKey('::1'), '0:0:0:0::/64');
  });

  it('finding 6: a bucket allows its burst, then refuses with the wait until the next token, and refills at the average', () => {
    const clock = fakeClock(0);
    const rl = new RateLimiter([{ periodMs: 60_000, average: 60, burst: 3 }], clock.now);
    assert.deepEqual([rl.take('a'), rl.take('a'), rl.take('a')], [0, 0, 0]);
    assert.equal(rl.take('a'), 1000);
    assert.equal(rl.take('b'), 0, 'another source has its own bucket');
    clock.advance(999);
    assert.equal(rl.take('a'), 1);
    clock.advance(1);
    assert.equal(rl.take('a'), 0);
    assert.equal(rl.take('a'), 1000);
  });

  it('finding 6: several rates must all pass (a short burst limit and a long average)', () => {
    const clock = fakeClock(0);
    const rates = [
      { periodMs: 1000, average: 10, burst: 10 },
      { periodMs: 3_600_000, average: 20, burst: 20 },
    ];
    const rl = new RateLimiter(rates, clock.now);
    let allowed = 0;
    for (let s = 0; s < 10; s++, clock.advance(1000)) for (let i = 0; i < 10; i++) if (rl.take('x') === 0) allowed++;
    assert.equal(allowed, 20);
  });

  it('finding 6: a flood from a million distinct sources keeps at most the cap of entries', () => {
    const rl = new RateLimiter([{ periodMs: 60_000, average: 1, burst: 1 }], () => 0, 1000);
    for (let i = 0; i < 1_000_000; i++) rl.take(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}#${i}`);
    assert.equal(rl.tracked, 1000);
  });

  it('finding 6: cycling through more sources than the table holds gives no fresh bursts (an IPv6 /48 has 65,536 /64s)', () => {
    const rl = new RateLimiter([{ periodMs: 60_000, average: 600, burst: 200 }], fakeClock(0).now, 10_000);
    let allowed = 0;
    // 3 rounds over 10,001 /64s of one /48, 100 requests each, all at one instant
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i <= 10_000; i++) {
        const key = sourceKey(`2001:db8:1:${i.toString(16)}::1`);
        for (let n = 0; n < 100; n++) if (rl.take(key) === 0) allowed++;
      }
    }
    // every /64 the table holds gets its one burst (200), spent in its first two rounds; the
    // overflow shares one more. Before: each eviction gave a fresh burst, 3,000,300 allowed.
    assert.ok(allowed <= 10_000 * 200 + 200, `allowed ${allowed}`);
    assert.equal(rl.tracked, 10_000);
  });

  it('finding 6: a source whose buckets refilled is forgotten for a new one; memory stays capped', () => {
    const clock = fakeClock(0);
    const rl = new RateLimiter([{ periodMs: 1000, average: 1, burst: 1 }], clock.now, 2);
    assert.equal(rl.take('a'), 0);
    assert.equal(rl.take('b'), 0);
    // the table is full of drawn-on sources: a newcomer shares the overflow bucket
    assert.equal(rl.take('c'), 0);
    assert.ok(rl.take('d') > 0, 'the overflow bucket is shared');
    clock.advance(2000); // a and b have refilled: forgetting them gives nothing away
    assert.equal(rl.take('e'), 0);
    assert.equal(rl.tracked, 2);
  });

  it('finding 6: refusals are reported as one summary per period', async () => {
    const reports: number[] = [];
    const s = new RefusalSummary(60_000, (n) => void reports.push(n));
    for (let i = 0; i < 500; i++) s.add(`10.0.0.${i % 7}`);
    await new Promise((r) => setTimeout(r, 20));
    for (let i = 0; i < 500; i++) s.add('10.0.0.1');
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(reports, [500], 'the first batch at once, the rest waits for the period');
    s.flush();
    assert.deepEqual(reports, [500, 500]);
  });

  it('finding 6: mwi.yaml connection_limits uses Teleport names and names the field at fault', () => {
    const tmp = tempDir('f06cfg');
    try {
      const file = join(tmp.path, 'mwi.yaml');
      writeFileSync(
        file,
        'connection_limits:\n  max_connections: 7\n  rates:\n    - { period: 10s, average: 5, burst: 2 }\n',
      );
      assert.deepEqual(loadAuthConfig(file, {}).connectionLimits, {
        maxConnections: 7,
        rates: [{ periodMs: 10_000, average: 5, burst: 2 }],
      });
      for (const [body, field] of [
        [
          'connection_limits:\n  rates:\n    - { period: 10s, average: 0, burst: 2 }\n',
          /connection_limits\.rates\[0\]\.average: expected at least 1/,
        ],
        [
          'connection_limits:\n  rates:\n    - { period: soon, average: 1, burst: 2 }\n',
          /connection_limits\.rates\[0\]\.period: expected a duration/,
        ],
        ['connection_limits:\n  max_conections: 3\n', /connection_limits\.max_conections: unknown key/],
      ] as const) {
        writeFileSync(file, body);
        assert.throws(
          () => loadAuthConfig(file, {}),
          (e: unknown) => isMwiError(e, 'BAD_CONFIG') && field.test(e.message),
        );
      }
    } finally {
      tmp.cleanup();
    }
  });
});

describe('finding 6: per-source rate limits on the Auth Service (mwi start)', () => {
  let c: TestCluster;
  const t = () => ({ addr: c.addr, tls: true });
  before(async () => {
    c = await startCluster(
      'f06.example',
      'connection_limits:\n  max_connections: 20\n  rates:\n    - period: 1m\n      average: 30\n      burst: 5\n',
    );
  });
  after(async () => c?.stop());

  it('finding 6: unauthenticated requests over the burst are answered 429 RATE_LIMITED with Retry-After, on every unauthenticated route', async () => {
    const r = await pipelined(t(), ping, 5);
    assert.deepEqual(r.statuses, [200, 200, 200, 200, 200]);
    const routes = [
      ['GET', '/v1/ping'],
      ['POST', '/v1/join'],
      ['POST', '/v1/join/challenge'],
      ['POST', '/v1/renew'],
      ['GET', '/v1/admin/status'],
      ['GET', '/nope'],
    ];
    const started = Date.now();
    const answers = await Promise.all(
      routes.map(([method, path]) =>
        rawRequest(
          t(),
          `${method} ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n` +
            `Connection: close\r\n\r\n{}`,
        ),
      ),
    );
    answers.forEach((x, i) => {
      assert.equal(x.status, 429, `${routes[i]!.join(' ')}: ${x.text}`);
      assert.equal(rawJson(x).error.code, 'RATE_LIMITED');
      assert.match(rawHeader(x, 'retry-after') ?? '', /^[1-9]\d*$/);
    });
    // held back until a token is due, at most a second: a looping client gets few answers
    assert.ok(Date.now() - started >= 900, `answered after ${Date.now() - started} ms`);
  });

  it('finding 6: another source keeps its own budget, and callers with a client identity are not limited', async () => {
    assert.equal(
      (
        await rawRequest(
          { ...t(), localAddress: '127.0.0.2' },
          ping.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'),
        )
      ).status,
      200,
    );
    assert.match(await c.tctlOk(['status']), /f06\.example/);
  });

  it('finding 6: a refused flood writes no audit line per request and at most one summary log line', async () => {
    const before = c.audit().length;
    const join = JSON.stringify({ token: 'flood', join_method: 'token', public_key: 'x' });
    const req =
      `POST /v1/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${join.length}\r\n\r\n${join}`;
    // 100 requests: 20 connections at once, 5 pipelined on each (Node closes a connection that
    // pipelines far ahead of slow answers: HPE_PAUSED, a refusal too, but not the one under test)
    const all = (await Promise.all(Array.from({ length: 20 }, () => pipelined(t(), req, 5)))).flatMap(
      (r) => r.statuses,
    );
    assert.equal(all.length, 100);
    // the bucket refills 1 token / 2 s while the flood runs (held answers take seconds): a few may pass
    const passed = all.filter((s) => s !== 429).length;
    assert.ok(passed <= 5, String(all));
    await new Promise((res) => setTimeout(res, 300));
    assert.ok(
      c.audit().length - before <= passed,
      'an audit event only for a request that was let through, none for a refused one',
    );
    assert.ok((c.proc.out().match(/refused requests over connection_limits/g) ?? []).length <= 1, c.proc.out());
  });

  it('finding 6: max_connections (20 here) bounds the open connections of one source', async () => {
    const open = await Promise.all(Array.from({ length: 20 }, () => openRaw(t())));
    try {
      const fifth = await rawRequest({ ...t() }, ping, 2000).catch(() => ({
        status: undefined,
        closed: true,
        text: '',
      }));
      assert.equal(fifth.status, undefined, fifth.text);
      assert.ok(fifth.closed);
    } finally {
      for (const s of open) s.destroy();
    }
    await new Promise((res) => setTimeout(res, 200));
    const again = await openRaw(t());
    const r = await collect(again, () => again.write(ping.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n')), 3000);
    assert.ok(r.status === 200 || r.status === 429, `a connection is accepted again once one closed: ${r.text}`);
  });
});

describe('finding 6: default limits (no connection_limits in mwi.yaml)', () => {
  let c: TestCluster;
  before(async () => {
    c = await startCluster('f06d.example');
  });
  after(async () => c?.stop());

  it('finding 6: by default a source gets a burst of 200 unauthenticated requests, then 429', async () => {
    const r = await pipelined({ addr: c.addr, tls: true }, ping, 230);
    assert.equal(r.statuses.length, 230);
    assert.equal(r.statuses.filter((s) => s === 200).length, 200, 'the burst (plus nothing: refill is 10/s)');
    assert.ok(r.statuses.slice(205).every((s) => s === 429));
  });
});
