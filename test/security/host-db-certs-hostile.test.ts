import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { handleDatabaseCert, signDbServer } from '../../src/auth/db-certs.js';
import { handleHostCert } from '../../src/auth/host-certs.js';
import { handleJoin } from '../../src/auth/join.js';
import { generateKeys } from '../../src/crypto/keys.js';
import { isMwiError } from '../../src/errors.js';
import { claimsOf, testContext } from '../helpers/auth-context.js';
import { run, tempDir, waitFor } from '../helpers/procs.js';

type T = Awaited<ReturnType<typeof testContext>>;
type BotClaims = ReturnType<typeof claimsOf>;

// POST /v1/certs/ssh_host and /v1/certs/database with what a stolen or buggy bot could send:
// each refused naming the field, nothing signed; what is signed is what the roles allow.
describe('ssh_host and database certificate routes: hostile input (Auth Service core)', () => {
  let t: T;
  let pub: string;
  let hostBot: BotClaims;
  let plainBot: BotClaims;
  let tmp: { path: string; cleanup: () => void };

  const join_ = async (bot: string) => {
    const { token } = await t.admin.addToken({ bot_name: bot, join_method: 'token' }, 'admin');
    const id = await handleJoin(t.ctx, { token, join_method: 'token', public_key: pub }, '127.0.0.1');
    return claimsOf(id.tls_cert);
  };
  const host = (c: BotClaims, body: unknown) => handleHostCert(t.ctx, c, body, '127.0.0.1');
  const db = (c: BotClaims, body: unknown) => handleDatabaseCert(t.ctx, c, body, '127.0.0.1');
  const bad = (field: string, why?: RegExp) => (e: unknown) =>
    isMwiError(e, 'BAD_REQUEST') && e.field === field && (why === undefined || why.test(e.message));

  before(async () => {
    t = await testContext();
    tmp = tempDir('host-db-hostile');
    pub = (await generateKeys('ec-p256')).publicKeyPem;
    const role = (name: string, allow: object, deny: object = {}) =>
      t.admin.create({ kind: 'role', metadata: { name }, spec: { allow, deny } }, false, 'admin');
    await role(
      'hosts',
      {
        rules: [
          { resources: ['host_cert'], verbs: ['create'], where: 'all_end_with(host_cert.principals, ".example.com")' },
          {
            resources: ['host_cert'],
            verbs: ['create'],
            where: 'is_subset(host_cert.principals, "*.web.example.com")',
          },
        ],
        db_users: ['app'],
        db_names: ['orders'],
      },
      { db_users: ['postgres'] },
    );
    await role('plain', { logins: ['deploy'] });
    await t.admin.addBot({ name: 'hoster', roles: ['hosts'] }, 'admin');
    await t.admin.addBot({ name: 'plain', roles: ['plain'] }, 'admin');
    hostBot = await join_('hoster');
    plainBot = await join_('plain');
  });
  after(() => tmp?.cleanup());

  it('a host certificate for allowed principals: signed by the host CA, the principals exactly, short-lived', async () => {
    const k = await generateKeys('ed25519');
    const res = await host(hostBot, { public_key: k.publicKeyPem, principals: ['a.example.com', 'a.example.com'] });
    assert.deepEqual(res.principals, ['a.example.com']);
    const file = join(tmp.path, 'cert.pub');
    writeFileSync(file, `${res.ssh_cert}\n`);
    const l = await run('ssh-keygen', ['-L', '-f', file]);
    assert.equal(l.code, 0, l.stderr);
    assert.match(l.stdout, /Type: ssh-ed25519-cert-v01@openssh.com host certificate/);
    assert.match(l.stdout, /Key ID: "bot-hoster\//);
    assert.match(l.stdout, /Principals: \n\s+a\.example\.com\n\s+Critical/);
    assert.ok(Date.parse(res.expires) - t.clock.now() <= 3600 * 1000);
    const events = t.ctx.audit.recent(5, { type: 'bot.certs' });
    assert.equal((await events)[0]?.output, 'ssh_host');
  });

  it('bad keys, oversized or odd principals, a pattern the role does not list: refused naming the field', async () => {
    const ok = (await generateKeys('ec-p256')).publicKeyPem;
    await assert.rejects(host(hostBot, null), bad('public_key'));
    await assert.rejects(host(hostBot, { public_key: 'nope', principals: ['a.example.com'] }), bad('public_key'));
    const rsa = `-----BEGIN PUBLIC KEY-----\n${'A'.repeat(300)}\n-----END PUBLIC KEY-----\n`;
    await assert.rejects(host(hostBot, { public_key: rsa, principals: ['a.example.com'] }), bad('public_key'));
    await assert.rejects(host(hostBot, { public_key: ok }), bad('principals'));
    await assert.rejects(host(hostBot, { public_key: ok, principals: [] }), bad('principals', /at least one/));
    await assert.rejects(host(hostBot, { public_key: ok, principals: 'a.example.com' }), bad('principals'));
    const many = Array.from({ length: 33 }, (_, i) => `h${i}.example.com`);
    await assert.rejects(host(hostBot, { public_key: ok, principals: many }), bad('principals', /at most 32/));
    await assert.rejects(host(hostBot, { public_key: ok, principals: [`${'a'.repeat(250)}.example.com`] }),
      bad('principals[0]', /1 to 253/)); // prettier-ignore
    for (const p of ['a.example.com,b.example.com', 'a.example.com\nb', 'a .example.com', '!a.example.com', '', 7])
      await assert.rejects(host(hostBot, { public_key: ok, principals: ['x.example.com', p] }),
        (e) => isMwiError(e, 'BAD_REQUEST') && /^principals(\[1\])?$/.test(e.field ?? ''), JSON.stringify(p)); // prettier-ignore
    await assert.rejects(
      host(hostBot, { public_key: ok, principals: ['*.example.com'] }),
      bad('principals', /pattern/),
    );
    await assert.rejects(host(hostBot, { public_key: ok, principals: ['example.org'] }), bad('principals', /do not/));
    // the pattern the role lists exactly is allowed
    const web = await host(hostBot, { public_key: ok, principals: ['*.web.example.com'] });
    assert.deepEqual(web.principals, ['*.web.example.com']);
  });

  it('a deny on db.example.com is not bypassed with a trailing dot or uppercase letters (issue #16, M2)', async () => {
    await t.admin.create(
      { kind: 'role', metadata: { name: 'no-db' }, spec: { deny: { rules: [{ resources: ['host_cert'],
        verbs: ['create'], where: 'is_subset(host_cert.principals, "DB.example.com")' }] } } },
      false,
      'admin',
    ); // prettier-ignore
    await t.admin.addBot({ name: 'denied', roles: ['hosts', 'no-db'] }, 'admin');
    const denied = await join_('denied');
    const ok = (await generateKeys('ed25519')).publicKeyPem;
    await assert.rejects(host(denied, { public_key: ok, principals: ['db.example.com'] }), bad('principals', /deny/));
    for (const p of ['db.example.com.', 'DB.example.com', 'db.EXAMPLE.com'])
      await assert.rejects(
        host(denied, { public_key: ok, principals: [p] }),
        bad('principals[0]', /ssh compares host names in lowercase|another name/),
        p,
      );
    const web = await host(denied, { public_key: ok, principals: ['web.example.com'] });
    assert.deepEqual(web.principals, ['web.example.com']);
  });

  it('a bot without a host_cert rule or db_users gets neither, told what its roles need', async () => {
    await assert.rejects(host(plainBot, { public_key: pub, principals: ['a.example.com'] }),
      bad('principals', /allow no host certificates.*host_cert/)); // prettier-ignore
    await assert.rejects(db(plainBot, { public_key: pub, service: 'pg', username: 'app' }),
      bad('username', /allow\.db_users/)); // prettier-ignore
  });

  it('a database certificate: CN is the user, signed by the db-client CA; other users and names refused', async () => {
    const res = await db(hostBot, { public_key: pub, service: 'pg', username: 'app', database: 'orders' });
    const cert = new X509Certificate(res.tls_cert);
    assert.equal(cert.subject, 'CN=app');
    assert.ok(cert.verify(new X509Certificate(t.ctx.cas.dbClient.certPem).publicKey));
    assert.ok(!cert.verify(new X509Certificate(t.ctx.cas.tlsUser.certPem).publicKey));
    assert.deepEqual(res.tls_ca_certs, [t.ctx.cas.db.certPem]);
    await assert.rejects(db(hostBot, { public_key: pub, service: 'pg', username: 'postgres' }), bad('username'));
    await assert.rejects(db(hostBot, { public_key: pub, service: 'pg', username: 'other' }), bad('username'));
    await assert.rejects(db(hostBot, { public_key: pub, service: 'pg', username: 'app', database: 'billing' }),
      bad('database')); // prettier-ignore
    // a CN with / or =, a comma, a newline, too long: refused before any role is read
    for (const u of ['app/x', 'CN=app', 'app,O=x', 'app\n', 'a'.repeat(64), '', 3])
      await assert.rejects(db(hostBot, { public_key: pub, service: 'pg', username: u }), bad('username'));
    await assert.rejects(db(hostBot, { public_key: pub, service: 'pg', username: 'app', database: 'a=b' }),
      bad('database')); // prettier-ignore
    await assert.rejects(db(hostBot, { public_key: pub, username: 'app' }), bad('service'));
    await assert.rejects(db(hostBot, { public_key: 'x', service: 'pg', username: 'app' }), bad('public_key'));
  });

  it('tctl auth sign --format db: only the local admin; host names only; SANs from the db CA', async () => {
    const req = { public_key: pub, hosts: ['db.example.com', '10.0.0.7'], ttl: undefined };
    await assert.rejects(signDbServer(t.ctx, req, 'alice'), (e) => isMwiError(e, 'ACCESS_DENIED'));
    for (const hosts of [[], ['*.example.com'], ['a b'], ['a,b']])
      await assert.rejects(signDbServer(t.ctx, { ...req, hosts }, 'admin'), bad('host'));
    await assert.rejects(signDbServer(t.ctx, { ...req, ttl: '0s' }, 'admin'), bad('ttl'));
    const signed = await signDbServer(t.ctx, req, 'admin');
    const cert = new X509Certificate(signed.cert);
    assert.equal(cert.subject, 'CN=db.example.com');
    assert.equal(cert.subjectAltName, 'DNS:db.example.com, IP Address:10.0.0.7');
    assert.ok(cert.verify(new X509Certificate(t.ctx.cas.db.certPem).publicKey));
    assert.equal(signed.client_ca, t.ctx.cas.dbClient.certPem);
    assert.ok(Date.parse(signed.expires) - t.clock.now() <= 2190 * 3600 * 1000);
  });

  it('a locked bot gets neither certificate (the same checks as every output)', async () => {
    await t.admin.addBot({ name: 'locked', roles: ['hosts'] }, 'admin');
    const locked = await join_('locked');
    const lock = { kind: 'lock', metadata: { name: 'l1' }, spec: { target: { user: 'bot-locked' } } };
    await t.admin.create(lock, false, 'admin');
    await waitFor('the lock cache', () => [...t.ctx.locks.lookup('user:bot-locked')].length > 0);
    await assert.rejects(host(locked, { public_key: pub, principals: ['a.example.com'] }), (e) =>
      isMwiError(e, 'LOCKED'),
    );
    await assert.rejects(db(locked, { public_key: pub, service: 'pg', username: 'app' }), (e) =>
      isMwiError(e, 'LOCKED'),
    );
  });
});
