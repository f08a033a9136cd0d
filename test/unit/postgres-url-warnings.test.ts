// What mwi start warns about on PostgreSQL storage, and what mwi install systemd warns about in
// its URL: pure checks over the URL, the config file's mode and the data dir.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { relativeFileParams, storageWarnings, urlHasPassword } from '../../src/storage/postgres-warnings.js';

const dir = mkdtempSync(join(tmpdir(), 'mwi-pgwarn-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const env = { HOME: dir };
const warn = (storage: string, more: { fromFlag?: boolean; configFile?: string; dataDir?: string } = {}) =>
  storageWarnings({
    storage,
    fromFlag: more.fromFlag ?? false,
    configFile: more.configFile,
    dataDir: more.dataDir ?? join(dir, 'none'),
    env,
  });

it('a password in the URL: in the user-info or a password parameter', () => {
  assert.ok(urlHasPassword('postgres://u:pw@h/db'));
  assert.ok(urlHasPassword('postgres://u@h/db?sslmode=disable&password=pw'));
  assert.ok(!urlHasPassword('postgres://u@h/db?application_name=a:b@c'));
  assert.ok(!urlHasPassword('postgres://h/db'));
});

it('sslmode below verify-full on a host other than this machine: a warning naming the storage', () => {
  const [w] = warn('postgres://mwi@db.example.com/mwi?sslmode=require');
  assert.match(
    w!,
    /^storage postgres:\/\/mwi@db\.example\.com:5432\/mwi: sslmode=require does not check .*verify-full/,
  );
  assert.equal(warn('postgres://mwi@db.example.com/mwi?sslmode=verify-ca&sslrootcert=/etc/hostname').length, 1);
  assert.deepEqual(warn('postgres://mwi@db.example.com/mwi?sslmode=verify-full&sslrootcert=/etc/hostname'), []);
  for (const host of ['localhost', '127.0.0.1', '[::1]', '%2Fvar%2Frun%2Fpostgresql'])
    assert.deepEqual(warn(`postgres://mwi@${host}/mwi?sslmode=disable`), [], host);
  assert.deepEqual(warn('sqlite'), []);
});

it('a password on the command line; in mwi.yaml only while the file is readable by group or others', () => {
  const url = 'postgres://mwi:pw@localhost/mwi';
  assert.match(warn(url, { fromFlag: true })[0]!, /^--storage: the URL carries a password.*\(ps, .*passfile/);
  const yaml = join(dir, 'mwi.yaml');
  writeFileSync(yaml, `storage: ${url}\n`);
  chmodSync(yaml, 0o644);
  assert.match(warn(url, { configFile: yaml })[0]!, /mwi\.yaml: its storage URL carries a password .*\(mode 644\)/);
  chmodSync(yaml, 0o600);
  assert.deepEqual(warn(url, { configFile: yaml }), []);
  // 0640: as for a passfile, allowed when root owns it (the .deb's root:mwi), not otherwise
  chmodSync(yaml, 0o640);
  assert.equal(warn(url, { configFile: yaml }).length, statSync(yaml).uid === 0 ? 0 : 1);
  assert.ok(warn(url, { configFile: yaml }).every((w) => !w.includes('pw@')));
});

it('a data dir that still holds mwi.db: it holds a copy of the CA keys', () => {
  writeFileSync(join(dir, 'mwi.db'), '');
  const [w] = warn('postgres://mwi@localhost/mwi', { dataDir: dir });
  assert.match(
    w!,
    /mwi\.db is still here while the storage is postgres:\/\/mwi@localhost:5432\/mwi: .*CA keys.*Archive/,
  );
});

it('install systemd: relative certificate, key and password file paths in the URL', () => {
  assert.deepEqual(
    relativeFileParams('postgres://h/db?sslrootcert=ca.crt&sslcert=%2Fabs%2Fc.crt&sslkey=k.key&passfile=./p'),
    ['sslrootcert=ca.crt', 'sslkey=k.key', 'passfile=./p'],
  );
  assert.deepEqual(relativeFileParams('postgres://h/db?sslrootcert=system&sslmode=verify-full'), []);
  assert.deepEqual(relativeFileParams('sqlite'), []);
});
