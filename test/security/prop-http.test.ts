import assert from 'node:assert/strict';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { PATHS } from '../../src/api/wire.js';
import { readIdentityFile } from '../../src/api/local.js';
import { sourceKey } from '../../src/auth/ratelimit.js';
import { isMwiError } from '../../src/errors.js';
import { joinMethodNames } from '../../src/join/catalog.js';
import { decodeSegment, parseTarget } from '../../src/util/http-target.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { collect, rawGet, rawRequest, type RawResult } from '../helpers/raw-http.js';

/**
 * Property (issue #9): random request targets and bodies sent to the Auth Service's routes are
 * never answered 5xx, and the process keeps serving. Seeds are printed on failure by fast-check;
 * re-run one with FC_SEED.
 */
const ROUTES = [
  PATHS.ping,
  PATHS.join,
  PATHS.challenge,
  PATHS.renew,
  PATHS.certs,
  PATHS.heartbeat,
  PATHS.endInstance,
  `${PATHS.admin}/status`,
  `${PATHS.admin}/resources/role`,
  `${PATHS.admin}/bots`,
  `${PATHS.admin}/tokens`,
  `${PATHS.admin}/audit`,
  `${PATHS.admin}/ca/host`,
];
const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS'];

/** Request-target text: visible ASCII (what the request line allows), `%` escapes good and bad included. */
const targetChars = fc.oneof(
  fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
  fc.constantFrom('%', '%2F', '%00', '%zz', '%E0%A4', '%C0%AF', '/', '..', '?', '&', '=', '#'),
);
const segment = fc.array(targetChars, { maxLength: 12 }).map((a) => a.join(''));
const target = fc.oneof(
  fc.constantFrom(...ROUTES),
  fc.tuple(fc.constantFrom(...ROUTES), fc.array(segment, { maxLength: 4 })).map(([r, s]) => [r, ...s].join('/')),
  fc.tuple(fc.constantFrom(...ROUTES), segment).map(([r, q]) => `${r}?${q}`),
  segment.map((s) => `/${s}`),
);
const joinLike = fc.record(
  {
    token: fc.oneof(fc.string(), fc.stringMatching(/^[0-9a-f]{32}$/), fc.constant('')),
    join_method: fc.oneof(fc.constantFrom(...joinMethodNames()), fc.string()),
    public_key: fc.oneof(fc.string(), fc.constant('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n')),
    ttl_seconds: fc.oneof(fc.integer(), fc.double(), fc.string()),
    payload: fc.jsonValue(),
    challenge_id: fc.string(),
  },
  { requiredKeys: [] },
);
const body = fc.oneof(
  fc.constant(undefined),
  joinLike.map((o) => JSON.stringify(o)),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
  fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
);

function request(method: string, path: string, b: string | Buffer | undefined): Buffer {
  const payload = b === undefined ? Buffer.alloc(0) : Buffer.isBuffer(b) ? b : Buffer.from(b);
  const head =
    `${method} ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${payload.length}\r\nConnection: close\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), payload]);
}

describe('property: the request-target and source parsers are total', () => {
  it('property: parseTarget and decodeSegment either succeed or refuse with BAD_REQUEST, whatever the input', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.string({ unit: 'binary' }),
          fc.array(targetChars).map((a) => a.join('')),
        ),
        (raw) => {
          for (const f of [() => parseTarget(raw), () => decodeSegment(raw)]) {
            try {
              f();
            } catch (err) {
              assert.ok(isMwiError(err, 'BAD_REQUEST'), String(err));
            }
          }
          const t = (() => {
            try {
              return parseTarget(raw);
            } catch {
              return undefined;
            }
          })();
          if (t) assert.ok(t.path.startsWith('/') && !t.path.includes('?'));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('property: sourceKey never throws, keys an IPv6 address by its /64 and an IPv4-mapped one as IPv4', () => {
    const v6 = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 });
    fc.assert(
      fc.property(v6, fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 4, maxLength: 4 }), (g, tail) => {
        const a = g.map((x) => x.toString(16)).join(':');
        const b = [...g.slice(0, 4), ...tail].map((x) => x.toString(16)).join(':');
        assert.equal(sourceKey(a), sourceKey(b), `${a} and ${b} share a /64`);
        assert.equal(
          sourceKey(`::ffff:${g[0]! & 255}.${g[1]! & 255}.${g[2]! & 255}.${g[3]! & 255}`),
          `${g[0]! & 255}.${g[1]! & 255}.${g[2]! & 255}.${g[3]! & 255}`,
        );
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.string(), (s) => void sourceKey(s)),
      { numRuns: 2000 },
    );
  });
});

describe('property: random requests to the Auth Service never produce a 500', () => {
  let c: TestCluster;
  before(async () => {
    c = await startCluster('prop.example', 'connection_limits:\n  rates: []\n');
  });
  after(async () => c?.stop());

  it('property: random targets and bodies without a client identity are answered, never 5xx', async () => {
    const t = { addr: c.addr, tls: true };
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...METHODS), target, body, async (method, path, b) => {
        const r = await rawRequest(t, request(method, path, b), 5000);
        assert.ok(r.status !== undefined, `no answer to ${method} ${path}`);
        assert.ok(r.status < 500, `${method} ${path}: ${r.text.slice(0, 400)}`);
      }),
      { numRuns: 250 },
    );
    assert.equal((await rawGet(t, '/v1/ping')).status, 200);
    assert.equal(c.proc.exitCode, null);
  });

  it('property: random admin paths and queries with the admin identity are answered, never 5xx', async () => {
    const id = readIdentityFile(join(c.dataDir, 'admin', 'identity.json'))!;
    const [host, port] = [c.addr.slice(0, c.addr.lastIndexOf(':')), Number(c.addr.slice(c.addr.lastIndexOf(':') + 1))];
    const adminTarget = fc.oneof(
      fc
        .tuple(
          fc.constantFrom(
            'resources',
            'resources/role',
            'resources/bot',
            'resources/token',
            'resources/bot_instance',
            'audit',
            'ca',
            'status',
            'bots',
          ),
          fc.array(segment, { maxLength: 3 }),
        )
        .map(([a, s]) => [`${PATHS.admin}/${a}`, ...s].join('/')),
      fc
        .tuple(fc.constantFrom('resources/role', 'resources/bot_instance', 'audit'), segment)
        .map(([a, q]) => `${PATHS.admin}/${a}?${q}`),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('GET', 'DELETE'), adminTarget, async (method, path) => {
        const s = connect({ host, port, servername: 'localhost', ca: id.ca_certs, cert: id.cert, key: id.key });
        await new Promise<void>((res, rej) => s.once('secureConnect', () => res()).once('error', rej));
        const r: RawResult = await collect(s, () => s.write(request(method, path, undefined)), 5000);
        assert.ok(r.status !== undefined, `no answer to ${method} ${path}`);
        assert.ok(r.status < 500, `${method} ${path}: ${r.text.slice(0, 400)}`);
      }),
      { numRuns: 150 },
    );
    assert.equal(c.proc.exitCode, null);
  });
});
