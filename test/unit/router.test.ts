import assert from 'node:assert/strict';
import { createPublicKey, X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { Readable } from 'node:stream';
import { before, describe, it } from 'node:test';
import { z } from 'zod';
import type { BotCredentialResponse } from '../../src/api/wire.js';
import type { Claims } from '../../src/auth/claims.js';
import { callerOf, carryRenewal } from '../../src/auth/connection-identity.js';
import { route, Router, type Area } from '../../src/auth/router.js';
import { authRoutes } from '../../src/auth/routes.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { issueCertificate } from '../../src/crypto/x509.js';
import { isMwiError, type ErrorCode } from '../../src/errors.js';
import { parseTarget } from '../../src/util/http-target.js';
import { testContext } from '../helpers/auth-context.js';

type Socket = Pick<TLSSocket, 'authorized' | 'getPeerX509Certificate'>;

/** A TLS socket whose client certificate TLS verified (or none): what the Auth Service sees. */
function socketWith(cert?: X509Certificate): Socket {
  return { authorized: cert !== undefined, getPeerX509Certificate: () => cert };
}

/** A request on `socket`; `read` records whether its body was read. */
function request(socket: Socket, method: string, url: string, body?: string, read = { body: false }): IncomingMessage {
  const data = body === undefined ? [] : [Buffer.from(body)];
  const stream = new Readable({
    read() {
      read.body = true;
      this.push(data.shift() ?? null);
    },
  });
  const headers = { 'content-length': String(body?.length ?? 0) };
  return Object.assign(stream, { method, url, headers, socket }) as unknown as IncomingMessage;
}

const refusedWith = (code: ErrorCode, message: RegExp) => (e: unknown) =>
  isMwiError(e, code) && message.test(e.message);

describe('the route table and which identity a request speaks as', () => {
  let certFor: (claims: Claims, ttlMs?: number) => Promise<X509Certificate>;
  let router: Router;
  let admin: Socket;
  const dispatch = (socket: Socket, method: string, url: string, body?: string) =>
    router.dispatch(request(socket, method, url, body), parseTarget(url), '127.0.0.1', Date.now());

  before(async () => {
    const t = await testContext();
    certFor = async (claims, ttlMs = 3_600_000) => {
      const keys = await generateKeys('ec-p256');
      const publicKey = createPublicKey(keys.publicKeyPem).export({ type: 'spki', format: 'der' });
      const opts = { ca: t.ctx.cas.tlsUser, publicKey, commonName: 'x', ttlMs, identity: claims };
      const { certPem } = await issueCertificate({ ...opts, usage: 'client' });
      return new X509Certificate(certPem);
    };
    router = new Router(authRoutes(t.ctx), 1000);
    admin = socketWith(await certFor({ kind: 'admin', user: 'alice' }));
  });

  it('admin area: the identity is checked before a route is looked up; 404s name the method and path', async () => {
    const bot = socketWith(await certFor({ kind: 'bot', bot: 'b', instance: 'i', generation: 1 }));
    const notAdmin = refusedWith('ACCESS_DENIED', /^the admin API needs an admin identity$/);
    for (const s of [socketWith(), bot]) await assert.rejects(dispatch(s, 'GET', '/v1/admin/nope'), notAdmin);
    const none = (s: Socket, method: string, path: string, message: RegExp) =>
      assert.rejects(dispatch(s, method, path), refusedWith('NOT_FOUND', message));
    await none(admin, 'GET', '/v1/admin/nope', /^no admin route GET \/v1\/admin\/nope$/);
    await none(admin, 'DELETE', '/v1/admin/status', /^no admin route DELETE/);
    await none(socketWith(), 'GET', '/v1/admin', /^no route GET \/v1\/admin$/);
    await none(socketWith(), 'DELETE', '/v1/join', /^no route DELETE \/v1\/join$/);
    const status = (await dispatch(admin, 'GET', '/v1/admin/status')) as object;
    assert.deepEqual(Object.keys(status), ['cluster_name', 'ca_pin', 'server_version']);
  });

  it('admin area: names are percent-decoded; a decoded "/" only in a bot instance name (BOT/ID)', async () => {
    const malformed = refusedWith('BAD_REQUEST', /^path: malformed percent-encoding/);
    await assert.rejects(dispatch(admin, 'GET', '/v1/admin/%zz'), malformed);
    const slash = refusedWith('BAD_REQUEST', /^path: a name in the path cannot contain \/$/);
    for (const kind of ['role', 'bot_instances', 'nope']) {
      await assert.rejects(dispatch(admin, 'GET', `/v1/admin/resources/${kind}/a%2Fb`), slash, kind);
    }
    await assert.rejects(dispatch(admin, 'GET', '/v1/admin/nope/a%2Fb'), slash);
    const instance = dispatch(admin, 'GET', '/v1/admin/resources/bot_instance/a%2Fb');
    await assert.rejects(instance, refusedWith('NOT_FOUND', /^bot_instance "a\/b" not found$/));
    assert.ok(await dispatch(admin, 'GET', '/v1/admin/%73tatus'));
  });

  it('admin bodies: checked by the route schema (BAD_REQUEST naming the field), then by the handler', async () => {
    const refused = (path: string, body: string, message: RegExp) =>
      assert.rejects(dispatch(admin, 'POST', path, body), refusedWith('BAD_REQUEST', message));
    await refused('/v1/admin/tokens', '{}', /^bot_name: Required$/);
    await refused('/v1/admin/resources', 'null', /^kind: unknown or missing resource kind/);
    await refused('/v1/admin/resources', '{', /^request body is not valid JSON$/);
  });

  it('routes: a parameter is never empty, an empty query value is absent, a refused body is never read', async () => {
    const seen: unknown[] = [];
    const areas: Area[] = [
      {
        prefix: '/',
        access: 'anyone',
        notFound: 'no route',
        routes: [
          route({ method: 'GET', path: '/x/:name', query: z.object({ q: z.string().optional() }) }, 'anyone', (c) => {
            seen.push({ params: c.params, query: c.query });
            return {};
          }),
          route({ method: 'POST', path: '/admin-only', body: z.unknown() }, 'admin', () => ({})),
        ],
      },
    ];
    const r = new Router(areas, 1000);
    const call = (socket: Socket, method: string, url: string, body?: string, read = { body: false }) =>
      r.dispatch(request(socket, method, url, body, read), parseTarget(url), '', Date.now());
    await call(socketWith(), 'GET', '/x/a?q=&q=2');
    await call(socketWith(), 'GET', '/x/a?q=1&q=2');
    assert.deepEqual(seen, [
      { params: { name: 'a' }, query: {} },
      { params: { name: 'a' }, query: { q: '1' } },
    ]);
    await assert.rejects(call(socketWith(), 'GET', '/x/'), refusedWith('NOT_FOUND', /^no route GET \/x\/$/));
    const read = { body: false };
    await assert.rejects(call(socketWith(), 'POST', '/admin-only', '{}', read), refusedWith('ACCESS_DENIED', /admin/));
    assert.equal(read.body, false, 'a refused request has its body left unread');
    await call(admin, 'POST', '/admin-only', '{}', read);
    assert.equal(read.body, true);
  });

  it('callerOf: an expired identity is none for anyone (joins) and refused for everyone else', async () => {
    const bot = socketWith(await certFor({ kind: 'bot', bot: 'b', instance: 'i', generation: 1 }, 60_000));
    const later = Date.now() + 120_000;
    const req = request(bot, 'POST', '/v1/join');
    assert.equal(callerOf(req, later, 'anyone'), undefined);
    const expired = refusedWith('ACCESS_DENIED', /^the identity this connection presented expired at /);
    assert.throws(() => callerOf(req, later, 'bot'), expired);
    assert.throws(() => callerOf(req, later, 'admin'), refusedWith('ACCESS_DENIED', /expired at/));
    assert.deepEqual(callerOf(req, Date.now(), 'bot'), { kind: 'bot', bot: 'b', instance: 'i', generation: 1 });
    assert.equal(callerOf(request(socketWith(), 'GET', '/'), Date.now(), 'bot'), undefined);
  });

  it('carryRenewal: a connection speaks as a renewal for its own instance, when the request spoke as it', async () => {
    const issued = (instance: string, generation: number, expiresInMs = 60_000): BotCredentialResponse => {
      const expires = new Date(Date.now() + expiresInMs).toISOString();
      return { bot_name: 'b', instance_id: instance, generation, expires } as BotCredentialResponse;
    };
    const socket = socketWith(await certFor({ kind: 'bot', bot: 'b', instance: 'i', generation: 1 }));
    const req = request(socket, 'POST', '/v1/renew');
    const caller = callerOf(req, Date.now(), 'bot');
    carryRenewal(req, caller, issued('other', 5));
    carryRenewal(req, undefined, issued('i', 5));
    assert.deepEqual(callerOf(req, Date.now(), 'bot'), caller);
    carryRenewal(req, caller, issued('i', 2, 1000));
    assert.deepEqual(callerOf(req, Date.now(), 'bot'), { kind: 'bot', bot: 'b', instance: 'i', generation: 2 });
    const late = Date.now() + 2000;
    assert.throws(() => callerOf(req, late, 'bot'), refusedWith('ACCESS_DENIED', /expired at/), 'it expires too');
  });
});
