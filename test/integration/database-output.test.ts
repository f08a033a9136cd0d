import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chownSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { clusterFile, startCluster, type TestCluster } from '../helpers/cluster.js';
import { startPostgres, type PgServer } from '../helpers/postgres.js';
import { cli, exited, run, spawnCli, waitFor, type CliProcess } from '../helpers/procs.js';

/**
 * tbot's database output with a real PostgreSQL 15 and Debian's psql: the server's certificate
 * comes from `tctl auth sign --format db`, its ssl_ca_file is `tctl auth export --type db-client`,
 * pg_hba.conf has `hostssl all all 127.0.0.1/32 cert`; psql connects with the written tls.crt,
 * tls.key and, for verify-full, tls.cas.
 */
describe('database output: PostgreSQL accepts the written certificate as its user (cert auth, verify-full)', () => {
  let c: TestCluster;
  let pg: PgServer;
  let tbot: CliProcess;
  let out: string;

  const tbotYaml = (token: string, username: string, dir: string, extra: string) =>
    `version: v2\nauth_server: ${c.addr}\nonboarding:\n  join_method: token\n  token: ${token}\n` +
    `  ca_pins: ["${c.caPin}"]\n${extra}outputs:\n  - type: database\n    service: orders-pg\n` +
    `    username: ${username}\n    database: orders\n    format: tls\n` +
    `    destination:\n      type: directory\n      path: ${dir}\n`;
  const addBot = async (name: string) =>
    (JSON.parse(await c.tctlOk(['bots', 'add', name, '--roles', 'db-role', '--format', 'json'])) as { token: string })
      .token;
  /** psql with the output's files, as `user`; `root` is the CA file that verifies the server. */
  const psql = (user: string, root = join(out, 'tls.cas'), mode = 'verify-full') =>
    run(
      'psql',
      [
        `host=127.0.0.1 port=${pg.port} dbname=orders user=${user} sslmode=${mode} sslrootcert=${root} ` +
          `sslcert=${join(out, 'tls.crt')} sslkey=${join(out, 'tls.key')} connect_timeout=10`,
        '-Atc',
        'select current_user',
      ],
      { timeoutMs: 30_000, env: { ...process.env, PGPASSWORD: '' } },
    );

  before(async () => {
    c = await startCluster('db.example');
    const role =
      'kind: role\nversion: v7\nmetadata: { name: db-role }\nspec:\n  allow:\n' +
      '    db_labels: { "*": "*" }\n    db_users: [app]\n    db_names: [orders]\n';
    await c.tctlOk(['create', '-f', clusterFile(c, 'db-role.yaml', role)]);
    pg = await startPostgres();
    // the recipe of docs/outputs.md: a server certificate from the db CA, the db-client CA as ssl_ca_file
    const prefix = join(pg.dir, 'mwi-server');
    // the key is made by tctl: a --public-key is refused, nothing written
    const withKey = await c.tctl([
      'auth',
      'sign',
      '--format',
      'db',
      '--host',
      'x',
      '--public-key',
      'k',
      '--out',
      prefix,
    ]);
    assert.equal(withKey.code, 2);
    assert.match(withKey.stderr, /--public-key: --format db makes its own key/);
    assert.ok(!existsSync(`${prefix}.key`));
    await c.tctlOk(['auth', 'sign', '--format', 'db', '--host', 'localhost,127.0.0.1', '--out', prefix]);
    const clientCa = join(pg.dir, 'mwi-db-client-ca.pem');
    writeFileSync(clientCa, await c.tctlOk(['auth', 'export', '--type', 'db-client']));
    assert.equal(readFileSync(`${prefix}.cas`, 'utf8'), readFileSync(clientCa, 'utf8'));
    if (process.getuid?.() === 0) {
      // PostgreSQL runs as postgres and refuses a key it does not own
      const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
      for (const f of [`${prefix}.key`, `${prefix}.crt`, clientCa]) chownSync(f, id('-u'), id('-g'));
    }
    writeFileSync(
      join(pg.dir, 'data', 'pg_hba.conf'),
      'local all all trust\nhost all postgres 127.0.0.1/32 trust\nhostssl all all 127.0.0.1/32 cert\n',
    );
    await pg.sql(`ALTER SYSTEM SET ssl_cert_file = '${prefix}.crt'`);
    await pg.sql(`ALTER SYSTEM SET ssl_key_file = '${prefix}.key'`);
    await pg.sql(`ALTER SYSTEM SET ssl_ca_file = '${clientCa}'`);
    await pg.sql('ALTER SYSTEM SET ssl = on');
    await pg.sql('SELECT pg_reload_conf()');
    await pg.sql('CREATE ROLE app LOGIN; CREATE ROLE other LOGIN');
    await pg.sql('CREATE DATABASE orders OWNER app');
    await waitFor('ssl on after the reload', async () => (await pg.sql('SHOW ssl')).rows[0]?.ssl === 'on');

    out = join(c.dir, 'db-out');
    const file = clusterFile(c, 'tbot.yaml', tbotYaml(await addBot('dbbot'), 'app', out,
      `storage:\n  type: memory\ncredential_ttl: 20s\nrenewal_interval: 6s\n`)); // prettier-ignore
    tbot = spawnCli('tbot', ['start', '-c', file]);
    await waitFor('tbot to write the database output', async () => {
      if (tbot.exitCode !== null) throw new Error(`tbot exited: ${tbot.out()}`);
      return existsSync(join(out, 'tls.cas'));
    });
  });
  after(async () => {
    if (tbot && tbot.exitCode === null) {
      tbot.kill('SIGTERM');
      await exited(tbot);
    }
    await pg?.stop();
    await c?.stop();
  });

  it('psql with tls.crt and tls.key logs in as the user; tls.cas verifies the server (verify-full)', async () => {
    const r = await psql('app');
    assert.equal(r.code, 0, `${r.stderr}\ntbot: ${tbot.out().slice(-1500)}`);
    assert.equal(r.stdout.trim(), 'app');
    assert.equal(new X509Certificate(readFileSync(join(out, 'tls.crt'))).subject, 'CN=app');
    assert.equal(readFileSync(join(out, 'tls.cas'), 'utf8'), await c.tctlOk(['auth', 'export', '--type', 'db']));
    // control: with another CA as the root, verify-full refuses the server
    const wrongRoot = clusterFile(c, 'wrong-root.pem', await c.tctlOk(['auth', 'export', '--type', 'tls-host']));
    const refused = await psql('app', wrongRoot);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /certificate verify failed/);
    // the database is recorded as asked for, not granted: the certificate does not carry it (issue #16, M1)
    const issued = c.audit().find((e) => e.event === 'bot.certs' && e.output === 'database' && e.success);
    assert.equal(issued?.db_name_requested, 'orders');
    assert.equal(issued?.db_name, undefined);
  });

  it('the same certificate as another user: refused by PostgreSQL', async () => {
    const r = await psql('other');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /certificate authentication failed for user "other"/);
  });

  it('renewal replaces the certificate; the renewed one logs in', async () => {
    const serial = () => new X509Certificate(readFileSync(join(out, 'tls.crt'))).serialNumber;
    const first = serial();
    await waitFor('a renewed database certificate', () => serial() !== first, 30_000);
    const r = await psql('app');
    assert.equal(r.code, 0, r.stderr);
  });

  it('a user the roles do not grant: refused by the Auth Service, naming username; nothing written', async () => {
    const dir = join(c.dir, 'denied-out');
    const file = clusterFile(c, 'denied.yaml', tbotYaml(await addBot('dbbot2'), 'postgres', dir, 'oneshot: true\n'));
    const r = await cli('tbot', ['start', '-c', file]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /username: the bot's roles do not grant database user "postgres"/);
    assert.ok(!existsSync(join(dir, 'tls.crt')));
    const refusal = c.audit().find((e) => e.event === 'bot.certs' && e.bot_name === 'dbbot2' && !e.success);
    assert.equal(refusal?.output, 'database');
  });
});
