import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { loadAuthConfig } from '../../src/auth/config.js';
import { isMwiError } from '../../src/errors.js';
import { lookupPassFile, parsePostgresUrl } from '../../src/storage/postgres-url.js';

const dir = mkdtempSync(join(tmpdir(), 'mwi-pgurl-'));
after(() => rmSync(dir, { recursive: true, force: true }));
/** No PG* variables and a HOME without ~/.postgresql or ~/.pgpass, unless a test gives them. */
const env = (more: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ HOME: dir, ...more });
const file = (name: string, text: string, mode = 0o600) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  chmodSync(p, mode);
  return p;
};
const refused = (spec: string, pattern: RegExp, e2: NodeJS.ProcessEnv = env()) =>
  assert.throws(
    () => parsePostgresUrl(spec, e2),
    (e) => {
      assert.ok(isMwiError(e, 'BAD_CONFIG') && e.field === 'storage', String(e));
      assert.match(e.message, pattern);
      return true;
    },
  );

it('postgres URL: user, password, host, port and database, percent-decoded; the display has no password', () => {
  const t = parsePostgresUrl('postgresql://mwi:p%40ss%3Aw%2Bd@db.example.com:6543/mwi_prod?sslmode=disable', env());
  assert.equal(t.user, 'mwi');
  assert.equal(t.password, 'p@ss:w+d');
  assert.equal(t.host, 'db.example.com');
  assert.equal(t.port, 6543);
  assert.equal(t.database, 'mwi_prod');
  assert.equal(t.tls, false);
  assert.equal(t.display, 'postgres://mwi@db.example.com:6543/mwi_prod');
  const v6 = parsePostgresUrl('postgres://u@[::1]:5433/d?sslmode=disable', env());
  assert.equal(v6.host, '::1');
  assert.equal(v6.display, 'postgres://u@[::1]:5433/d');
  // a socket directory as the host parameter, as libpq accepts it
  const sock = parsePostgresUrl('postgres:///mwi?host=%2Frun%2Fpg', env({ PGUSER: 'svc' }));
  assert.equal(sock.host, '/run/pg');
  assert.equal(sock.user, 'svc');
  assert.equal(sock.tls, false, 'no TLS on a Unix socket');
});

it('postgres URL: PG* variables fill what the URL leaves out; the URL wins; libpq defaults last', () => {
  const e = env({ PGHOST: 'envhost', PGPORT: '7000', PGUSER: 'envuser', PGDATABASE: 'envdb', PGPASSWORD: 'envpw' });
  const t = parsePostgresUrl('postgres://', e);
  assert.deepEqual([t.host, t.port, t.user, t.database, t.password], ['envhost', 7000, 'envuser', 'envdb', 'envpw']);
  const u = parsePostgresUrl('postgres://urluser@urlhost/urldb', e);
  assert.deepEqual([u.host, u.port, u.user, u.database], ['urlhost', 7000, 'urluser', 'urldb']);
  const d = parsePostgresUrl('postgres://h', env({ PGUSER: 'me' }));
  assert.equal(d.port, 5432);
  assert.equal(d.database, 'me', 'the database is named like the user by default');
  assert.equal(d.sslmode, 'prefer');
  assert.equal(d.connectTimeoutMs, 5000, 'mwi fails fast by default where libpq would wait');
  assert.equal(parsePostgresUrl('postgres://h?connect_timeout=10', env()).connectTimeoutMs, 10_000);
  assert.equal(parsePostgresUrl('postgres://h', env({ PGCONNECT_TIMEOUT: '3' })).connectTimeoutMs, 3000);
});

it('postgres URL: bad input names what is wrong', () => {
  refused('postgres://h?sslmod=require', /unknown PostgreSQL URL parameter "sslmod" \(mwi reads host, port/);
  refused('postgres://h?sslmode=strict', /invalid sslmode "strict" \(expected disable, allow, prefer, require/);
  refused('postgres://h:99999/db', /invalid PostgreSQL port "99999"/);
  refused('postgres://a:5432,b:5432/db', /several hosts in one PostgreSQL URL are not supported/);
  refused('postgres://h/db#frag', /no #fragment/);
  refused('postgres://h?connect_timeout=soon', /invalid connect_timeout "soon"/);
  refused('postgres://h?sslmode', /has no value/);
});

it('postgres URL: sslmode as libpq has it (prefer and allow fall back; verify-ca and verify-full need a CA)', () => {
  const ca = file('root.pem', '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
  const prefer = parsePostgresUrl('postgres://h', env());
  assert.deepEqual(prefer.tls, { rejectUnauthorized: false });
  assert.equal(prefer.fallback, false, 'prefer: TLS, else plain');
  const allow = parsePostgresUrl('postgres://h?sslmode=allow', env());
  assert.equal(allow.tls, false);
  assert.deepEqual(allow.fallback, { rejectUnauthorized: false }, 'allow: plain, else TLS');
  const require = parsePostgresUrl('postgres://h?sslmode=require', env());
  assert.deepEqual(require.tls, { rejectUnauthorized: false });
  assert.equal(require.fallback, undefined);
  // libpq: with a root certificate, require checks the chain as verify-ca does
  const requireCa = parsePostgresUrl(`postgres://h?sslmode=require&sslrootcert=${ca}`, env());
  assert.ok(requireCa.tls && requireCa.tls.rejectUnauthorized && requireCa.tls.ca && requireCa.tls.checkServerIdentity);
  const verifyCa = parsePostgresUrl('postgres://h?sslmode=verify-ca', env({ PGSSLROOTCERT: ca }));
  assert.ok(verifyCa.tls && verifyCa.tls.checkServerIdentity?.('x', {} as never) === undefined);
  const full = parsePostgresUrl(`postgres://db.example.com?sslmode=verify-full&sslrootcert=${ca}`, env());
  assert.ok(full.tls && full.tls.rejectUnauthorized && full.tls.ca);
  assert.equal(full.tls.checkServerIdentity, undefined, 'verify-full checks the host name');
  assert.equal(full.tls.servername, 'db.example.com');
  refused('postgres://h?sslmode=verify-full', /sslmode=verify-full needs the CA certificate .*sslrootcert=FILE/);
  refused(`postgres://h?sslmode=verify-full&sslrootcert=${join(dir, 'none.pem')}`, /sslrootcert: cannot read .*ENOENT/);
  // sslrootcert=system: the machine's trust store, and verify-full unless another mode is given
  const system = parsePostgresUrl('postgres://h?sslrootcert=system', env());
  assert.equal(system.sslmode, 'verify-full');
  assert.ok(system.tls && system.tls.rejectUnauthorized && system.tls.ca === undefined);
  refused('postgres://h?sslrootcert=system&sslmode=require', /sslrootcert=system needs sslmode=verify-full/);
  assert.equal(parsePostgresUrl('postgres://h?sslmode=disable', env()).tls, false);
});

it('postgres URL: client certificates; a key others can read is refused as libpq refuses it', () => {
  const cert = file('client.crt', 'CERT');
  const key = file('client.key', 'KEY');
  const t = parsePostgresUrl(`postgres://h?sslmode=require&sslcert=${cert}&sslkey=${key}`, env());
  assert.ok(t.tls && t.tls.cert === 'CERT' && t.tls.key === 'KEY');
  const loose = file('loose.key', 'KEY', 0o644);
  refused(`postgres://h?sslmode=require&sslcert=${cert}&sslkey=${loose}`, /sslkey: .*loose\.key gives group or other/);
  refused(`postgres://h?sslmode=require&sslkey=${key}`, /sslkey needs sslcert/);
  const viaEnv = parsePostgresUrl('postgres://h?sslmode=require', env({ PGSSLCERT: cert, PGSSLKEY: key }));
  assert.ok(viaEnv.tls && viaEnv.tls.cert === 'CERT');
});

it('postgres URL: passwords from a password file (passfile, PGPASSFILE, ~/.pgpass), libpq format', () => {
  const text = [
    '# comment',
    'other:5432:*:mwi:wrong',
    'db.example.com:5432:mwi:mwi:pa\\:ss\\\\1',
    '*:*:*:mwi:fallback',
  ].join('\n');
  const pass = file('pgpass', text);
  assert.equal(parsePostgresUrl(`postgres://mwi@db.example.com/mwi?passfile=${pass}`, env()).password, 'pa:ss\\1');
  assert.equal(parsePostgresUrl('postgres://mwi@elsewhere/x', env({ PGPASSFILE: pass })).password, 'fallback');
  assert.equal(parsePostgresUrl('postgres://mwi:given@elsewhere/x', env({ PGPASSFILE: pass })).password, 'given');
  file('.pgpass', 'h:5432:*:*:home\n');
  assert.equal(parsePostgresUrl('postgres://x@h/db', env()).password, 'home');
  rmSync(join(dir, '.pgpass'));
  const open = file('open-pgpass', text, 0o644);
  refused(`postgres://mwi@h/x?passfile=${open}`, /passfile: .*gives group or other users access.*chmod 600/);
  assert.equal(lookupPassFile('h:1:d:u:p', { host: 'h', port: 2, database: 'd', user: 'u' }), undefined);
});

it("mwi.yaml storage: a URL, or Teleport's {type: postgresql, conn_string}; audit.retention_period", () => {
  const yaml = (text: string) => file('mwi.yaml', text);
  assert.equal(loadAuthConfig(yaml('storage: postgres://db/mwi\n'), {}).storage, 'postgres://db/mwi');
  const teleport = yaml('storage:\n  type: postgresql\n  conn_string: postgresql://mwi@db/mwi?sslmode=verify-full\n');
  assert.equal(loadAuthConfig(teleport, {}).storage, 'postgresql://mwi@db/mwi?sslmode=verify-full');
  assert.equal(loadAuthConfig(teleport, { storage: 'sqlite' }).storage, 'sqlite', 'the flag wins');
  const bad = (text: string, field: string, pattern: RegExp) =>
    assert.throws(
      () => loadAuthConfig(yaml(text), {}),
      (e) => {
        assert.ok(isMwiError(e, 'BAD_CONFIG'), String(e));
        assert.equal(e.field, `${join(dir, 'mwi.yaml')}: ${field}`);
        assert.match(e.message, pattern);
        return true;
      },
    );
  bad('storage: {type: dynamodb, conn_string: x}\n', 'storage.type', /expected postgresql/);
  bad(
    'storage: {type: postgresql, conn_string: mysql://x}\n',
    'storage.conn_string',
    /postgres:\/\/ or postgresql:\/\//,
  );
  bad('storage: {type: postgresql, conn_string: postgres://x, region: eu}\n', 'storage.region', /unknown key/);
  assert.equal(loadAuthConfig(undefined, {}).auditRetentionMs, 8766 * 3600_000);
  assert.equal(loadAuthConfig(yaml('audit: {retention_period: 720h}\n'), {}).auditRetentionMs, 720 * 3600_000);
  bad('audit: {retention_period: 5m}\n', 'audit.retention_period', /at least 1h/);
});
