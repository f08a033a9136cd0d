// The PostgreSQL URL: a password never reaches an error message, however malformed the URL is
// around it; Teleport's pool_max_conns is read, and the rest of Teleport's storage keys are
// refused with what mwi does instead.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { loadAuthConfig } from '../../src/auth/config.js';
import { isMwiError } from '../../src/errors.js';
import { parsePostgresUrl } from '../../src/storage/postgres-url.js';

const dir = mkdtempSync(join(tmpdir(), 'mwi-pgurl-tp-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const env = { HOME: dir };

const refused = (spec: string, pattern: RegExp, secret?: string) =>
  assert.throws(
    () => parsePostgresUrl(spec, env),
    (e) => {
      assert.ok(isMwiError(e, 'BAD_CONFIG') && e.field === 'storage', String(e));
      assert.match(e.message, pattern);
      if (secret) assert.ok(!e.message.includes(secret), `the password is in: ${e.message}`);
      return true;
    },
  );

it('postgres URL errors never quote the password, even where the URL around it is malformed', () => {
  refused('postgres://u:secret%zz@h/db', /invalid percent-encoding in the PostgreSQL URL near \(not shown/, 'secret');
  // a "/" in the password ends the user-info early: what is left looks like a host and port
  refused('postgres://u:sec/ret@h', /invalid host and port \(not shown: .*%2F/, 'sec');
  // a "?" in the password: the rest looks like a parameter
  refused('postgres://u:sec?ret@h', /PostgreSQL URL parameter \(not shown: .*%3F/, 'ret');
  refused('postgres://u:sec#ret@h/db', /"#" in the user name or password must be written %23/, 'ret');
  refused(
    'postgres://h/db?password=sec%zz',
    /invalid percent-encoding in the PostgreSQL URL near the password \(not shown\)/,
    'sec',
  );
  // what comes after the user-info is still quoted
  refused('postgres://u:pw@h/db?sslmod=require', /unknown PostgreSQL URL parameter "sslmod"/, 'pw');
  refused('postgres://h/d%zz', /near "d%zz"/);
});

it('postgres URL: pool_max_conns (pgx, as in Teleport) sets the pool size, 1 to 100; default 10', () => {
  assert.equal(parsePostgresUrl('postgres://h/db', env).poolSize, 10);
  assert.equal(parsePostgresUrl('postgres://h/db?pool_max_conns=40', env).poolSize, 40);
  refused('postgres://h/db?pool_max_conns=0', /invalid pool_max_conns "0" \(expected 1 to 100\)/);
  refused('postgres://h/db?pool_max_conns=101', /invalid pool_max_conns "101"/);
  refused('postgres://h/db?pool_max_conns=many', /invalid pool_max_conns "many"/);
  refused('postgres://h/db?pool_max_conn_lifetime=1h', /"pool_max_conn_lifetime" is not supported: .*pool_max_conns/);
});

it("mwi.yaml storage: Teleport's other PostgreSQL keys are refused, each saying what mwi does instead", () => {
  const yaml = join(dir, 'mwi.yaml');
  const bad = (key: string, value: string, pattern: RegExp) => {
    writeFileSync(yaml, `storage: {type: postgresql, conn_string: "postgres://db/mwi", ${key}: ${value}}\n`);
    assert.throws(
      () => loadAuthConfig(yaml, {}),
      (e) => {
        assert.ok(isMwiError(e, 'BAD_CONFIG'), String(e));
        assert.equal(e.field, `${yaml}: storage.${key}`);
        assert.match(e.message, pattern);
        return true;
      },
    );
  };
  bad('audit_events_uri', '["postgresql://db/audit"]', /same database \(mwi_events\).*audit\.retention_period/);
  bad('change_feed_conn_string', '"postgres://db/mwi"', /no wal_level=logical.*no role with REPLICATION/);
  bad('auth_mode', 'azure', /Azure AD.*not supported: use a client certificate/);
  bad('gcp_connection_name', 'p:r:i', /GCP Cloud SQL/);
  bad('expiry_interval', '30s', /expired items are always removed/);
  bad('audit_sessions_uri', 'file:///x', /records no sessions/);
  writeFileSync(yaml, 'storage: {type: postgresql, conn_string: "postgres://db/mwi?pool_max_conns=20"}\n');
  assert.equal(loadAuthConfig(yaml, {}).storage, 'postgres://db/mwi?pool_max_conns=20');
});
