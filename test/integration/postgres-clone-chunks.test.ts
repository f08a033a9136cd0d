// `mwi backend clone` at size and under -c, `mwi backend migrate`, and what mwi start says about
// its PostgreSQL storage: a copy written in chunks inside one transaction (all or nothing), --force
// that says what it replaces, one database under two names refused, pool_max_conns, the missing
// password named, and the startup line and warnings.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { PostgresBackend } from '../../src/storage/postgres.js';
import { SqliteBackend } from '../../src/storage/sqlite.js';
import { launchAuth } from '../helpers/launch-auth.js';
import { startPostgres, type PgServer } from '../helpers/postgres.js';
import { cli, tempDir } from '../helpers/procs.js';

let pg: PgServer;
const tmp = tempDir('pg-clone-chunks');
before(async () => {
  pg = await startPostgres({ tls: true });
});
after(async () => {
  await pg?.stop();
  tmp.cleanup();
});

/** A SQLite storage in a data dir of its own holding `items`. */
async function sqliteSource(name: string, items: Array<[string, string]>): Promise<string> {
  const dataDir = join(tmp.path, name);
  mkdirSync(dataDir);
  const b = new SqliteBackend(join(dataDir, 'mwi.db'));
  await Promise.all(items.map(([k, v]) => b.put(k, v)));
  await b.close();
  return dataDir;
}

const count = async (db: string, table = 'mwi_kv') =>
  Number((await pg.sql(`SELECT count(*) AS n FROM ${table}`, db)).rows[0].n);

const things = (n: number) =>
  Array.from({ length: n }, (_, i): [string, string] => [`/things/${String(i).padStart(5, '0')}`, `v${i}`]);

it('clone -c mwi.yaml: --to is its storage, --from its data dir; 2500 items in chunks of 1000, one transaction', async () => {
  const url = await pg.createDatabase('big');
  const dataDir = await sqliteSource('big', [...things(2500), ['/bots/robot', '{}']]);
  const yaml = join(tmp.path, 'big.yaml');
  writeFileSync(yaml, `cluster_name: big.example.com\ndata_dir: ${dataDir}\nstorage: "${url}"\n`);
  const r = await cli('mwi', ['backend', 'clone', '-c', yaml]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout,
    `cloned 2501 items from sqlite://${dataDir}/mwi.db to postgres://postgres@127.0.0.1:${pg.port}/big\n`,
  );
  assert.equal(await count('big'), 2501);
  assert.equal(await count('big', 'mwi_changes'), 2501, 'each row with its change-log entry');
  const counter = await pg.sql("SELECT value FROM mwi_counters WHERE name = 'revision'", 'big');
  assert.equal(Number(counter.rows[0].value), 2501);

  // --force: what the destination holds is printed by kind, then replaced by the source's items
  const small = await sqliteSource('small', [
    ['/bots/other', '{}'],
    ['/tokens/t1', '{}'],
  ]);
  const refused = await cli('mwi', ['backend', 'clone', '-c', yaml, '--data-dir', small]);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /^ERROR: --to: the destination already holds data \(\/bots\/robot, \.\.\.\)/);
  const forced = await cli('mwi', ['backend', 'clone', '-c', yaml, '--data-dir', small, '--force']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.match(
    forced.stderr,
    /^--force: replacing the 2501 items postgres:\/\/\S+\/big holds \(bots: 1, things: 2500\) with the source's: .*tokens spent since come back/,
  );
  assert.match(forced.stdout, /^cloned 2 items from /);
  const keys = await pg.sql('SELECT key FROM mwi_kv ORDER BY key', 'big');
  assert.deepEqual(
    keys.rows.map((r: { key: string }) => r.key),
    ['/bots/other', '/tokens/t1'],
    'the destination is the source',
  );
});

it('clone: a failure in a later chunk leaves the destination as it was (all or nothing)', async () => {
  await pg.createDatabase('partial');
  const items = things(1500);
  items[1200] = [items[1200]![0], 'a NUL \u0000 PostgreSQL text cannot hold'];
  const dataDir = await sqliteSource('partial', items);
  const r = await cli('mwi', ['backend', 'clone', '--data-dir', dataDir, '--to', pg.url('partial')]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /--to: copy into PostgreSQL at postgres:\/\/\S+\/partial failed, nothing was copied/);
  assert.equal(await count('partial'), 0);
});

it('clone: a statement_timeout set on the database does not cut the copy off (its connection sets none)', async () => {
  const url = await pg.createDatabase('slowdb');
  assert.equal((await cli('mwi', ['backend', 'migrate', '--storage', url])).code, 0);
  // each write into mwi_kv takes 0.2 s, over the database's 0.1 s statement_timeout
  await pg.sql(
    'CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.2); RETURN NULL; END $$; ' +
      'CREATE TRIGGER slow AFTER INSERT ON mwi_kv FOR EACH STATEMENT EXECUTE FUNCTION slow()',
    'slowdb',
  );
  await pg.sql("ALTER DATABASE slowdb SET statement_timeout = '100ms'");
  const dataDir = await sqliteSource('slowdb', things(1500));
  const r = await cli('mwi', ['backend', 'clone', '--data-dir', dataDir, '--to', url]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await count('slowdb'), 1500);
});

it('clone: one database under two names (localhost, 127.0.0.1) is refused; the server says which it is', async () => {
  await pg.createDatabase('twice');
  const at = (host: string) => `postgres://postgres@${host}:${pg.port}/twice?sslmode=disable`;
  const r = await cli('mwi', ['backend', 'clone', '--from', at('localhost'), '--to', at('127.0.0.1')]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^ERROR: --to: the source and the destination are the same storage\n$/);
});

it('pool_max_conns sets the size of the pool', async () => {
  await pg.createDatabase('pool');
  const b = await PostgresBackend.open(`${pg.url('pool')}&pool_max_conns=3`);
  try {
    assert.equal(b.pool.options.max, 3);
  } finally {
    await b.close();
  }
});

it("backend migrate: the owner creates the tables; a service role with the guide's grants then starts", async () => {
  await pg.createDatabase('owned');
  const r = await cli('mwi', ['backend', 'migrate', '--storage', pg.url('owned')]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^postgres:\/\/postgres@127\.0\.0\.1:\d+\/owned: schema migrated from version 0 to \d+\n$/);
  const again = await cli('mwi', ['backend', 'migrate', '--storage', pg.url('owned')]);
  assert.match(again.stdout, /: schema version \d+, nothing to migrate\n$/);
  // the guide's grants for a role that may not create tables (CONNECT: the REVOKE takes it from PUBLIC)
  await pg.sql('CREATE ROLE mwi_service LOGIN');
  await pg.sql('REVOKE ALL ON DATABASE owned FROM PUBLIC');
  const service = `postgres://mwi_service@127.0.0.1:${pg.port}/owned?sslmode=disable`;
  await assert.rejects(PostgresBackend.open(service), /permission denied for database "owned"/);
  await pg.sql('GRANT CONNECT ON DATABASE owned TO mwi_service');
  await pg.sql('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO mwi_service', 'owned');
  await pg.sql('GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO mwi_service', 'owned');
  const b = await PostgresBackend.open(service);
  try {
    await b.put('/service', 'ok');
  } finally {
    await b.close();
  }
});

it("no password for a role that needs one: said in words, not the driver's SCRAM message", async () => {
  await pg.createDatabase('nopw');
  const r = await cli(
    'mwi',
    ['backend', 'migrate', '--storage', `postgres://mwi_pw@127.0.0.1:${pg.port}/nopw?sslmode=disable`],
    {
      env: { PGPASSWORD: '', PGPASSFILE: '', HOME: tmp.path },
    },
  );
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /no password for mwi_pw: give it in the URL, PGPASSWORD or a passfile/);
  assert.doesNotMatch(r.stderr, /SCRAM/);
});

it('mwi start on PostgreSQL: names the storage; warns of a password in --storage and of a leftover mwi.db', async () => {
  await pg.createDatabase('warned');
  const dataDir = join(tmp.path, 'warned-data');
  mkdirSync(dataDir);
  writeFileSync(join(dataDir, 'mwi.db'), '');
  const storage = `postgres://postgres:not-needed@127.0.0.1:${pg.port}/warned?sslmode=disable`;
  const auth = await launchAuth({ clusterName: 'warned.example.com', dataDir, args: ['--storage', storage] });
  try {
    const out = auth.proc.out();
    assert.match(out, /\(storage postgres:\/\/postgres@127\.0\.0\.1:\d+\/warned\) listening on /);
    assert.match(out, /warning: --storage: the URL carries a password, which every user of this host can read/);
    assert.match(
      out,
      /warning: \S+mwi\.db is still here while the storage is postgres:\/\/\S+: it holds a copy of the CA keys/,
    );
    assert.ok(!out.includes('not-needed'), 'the password is never printed');
    // loopback: no word about sslmode
    assert.doesNotMatch(out, /sslmode=disable does not check/);
  } finally {
    await auth.stop();
  }
});

it('install systemd: relative certificate paths in the storage URL are warned about (the unit has no working dir)', async () => {
  const yaml = join(tmp.path, 'relative.yaml');
  writeFileSync(yaml, 'storage: "postgres://mwi@db.example.com/mwi?sslmode=verify-full&sslrootcert=ca.crt"\n');
  const r = await cli('mwi', ['install', 'systemd', '-c', yaml]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^warning: storage: sslrootcert=ca\.crt: the unit sets no working directory.*absolute paths/);
  assert.match(r.stdout, /ExecStart=/);
});

it('another cluster name on a database that holds one: the error names the database (no password) and what to do', async () => {
  await pg.createDatabase('named');
  const storage = `postgres://postgres:not-needed@127.0.0.1:${pg.port}/named?sslmode=disable`;
  const first = await launchAuth({ clusterName: 'vm', args: ['--storage', storage] });
  await first.stop();
  const dataDir = join(tmp.path, 'named-data');
  const r = await cli('mwi', ['start', '--storage', storage, '--cluster-name', 'example.com', '--data-dir', dataDir]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr,
    /ERROR: cluster_name: the storage at postgres:\/\/postgres@127\.0\.0\.1:\d+\/named belongs to cluster "vm", not "example\.com": start with cluster_name "vm" \(the name tctl status prints/,
  );
  assert.ok(!r.stderr.includes('not-needed'));
});
