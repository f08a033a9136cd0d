// The PostgreSQL backend over TLS as a deployment would use it: verify-full with the server's CA,
// a client certificate, a password file; and what a wrong CA or a missing certificate gives.
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { isMwiError } from '../../src/errors.js';
import { PostgresBackend } from '../../src/storage/postgres.js';
import { launchAuth } from '../helpers/launch-auth.js';
import { startPostgres, type PgServer } from '../helpers/postgres.js';
import { cli, run, tempDir } from '../helpers/procs.js';

let pg: PgServer;
const tmp = tempDir('pg-tls');
before(async () => {
  pg = await startPostgres({ tls: true });
  await pg.createDatabase('mwi');
  // the client key as a user keeps it: owner-only (libpq refuses it otherwise)
  copyFileSync(join(pg.dir, 'client.key'), join(tmp.path, 'client.key'));
  chmodSync(join(tmp.path, 'client.key'), 0o600);
});
after(async () => {
  await pg?.stop();
  tmp.cleanup();
});

/** Whether the backend's connection uses TLS, as the server sees it. */
async function usesTls(b: PostgresBackend): Promise<boolean> {
  const r = await b.pool.query<{ ssl: boolean }>('SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()');
  return r.rows[0]!.ssl;
}

it('verify-full with the CA file and a client certificate (pg_hba cert): connects over TLS', async () => {
  const cert = join(pg.dir, 'client.crt');
  const key = join(tmp.path, 'client.key');
  for (const host of ['localhost', '127.0.0.1']) {
    const b = await PostgresBackend.open(
      `postgres://mwi_cert@${host}:${pg.port}/mwi?sslmode=verify-full&sslrootcert=${pg.caFile}&sslcert=${cert}&sslkey=${key}`,
    );
    assert.ok(await usesTls(b));
    await b.put('/tls', host);
    await b.close();
  }
});

it('a password from a password file; sslmode=prefer uses TLS when the server offers it', async () => {
  const pass = join(tmp.path, 'pgpass');
  writeFileSync(pass, `127.0.0.1:${pg.port}:mwi:mwi_pw:secret-pw\n`, { mode: 0o600 });
  const b = await PostgresBackend.open(`postgres://mwi_pw@127.0.0.1:${pg.port}/mwi?passfile=${pass}`);
  assert.ok(await usesTls(b), 'prefer: TLS first');
  await b.close();
  await assert.rejects(
    PostgresBackend.open(`postgres://mwi_pw:wrong@127.0.0.1:${pg.port}/mwi?sslmode=disable`),
    (e) => {
      assert.ok(isMwiError(e, 'STORAGE'));
      assert.match(
        e.message,
        /PostgreSQL at postgres:\/\/mwi_pw@127\.0\.0\.1:\d+\/mwi: password authentication failed/,
      );
      assert.ok(!e.message.includes('wrong'));
      return true;
    },
  );
});

it('verify-full refuses a server certificate from another CA, and one not issued for the host name', async () => {
  const other = join(tmp.path, 'other-ca.crt');
  const r = await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-days', '1', '-subj', '/CN=other', '-keyout', join(tmp.path, 'other.key'), '-out', other]); // prettier-ignore
  assert.equal(r.code, 0, r.stderr);
  await assert.rejects(
    PostgresBackend.open(`postgres://postgres@127.0.0.1:${pg.port}/mwi?sslmode=verify-full&sslrootcert=${other}`),
    (e) => {
      assert.ok(isMwiError(e, 'STORAGE'), String(e));
      assert.match(e.message, /certificate/i);
      return true;
    },
  );
  // the certificate names localhost and 127.0.0.1, not 127.0.0.2; verify-ca does not look at the name
  const byName = (mode: string) =>
    `postgres://postgres@127.0.0.2:${pg.port}/mwi?sslmode=${mode}&sslrootcert=${pg.caFile}`;
  await assert.rejects(PostgresBackend.open(byName('verify-full')), (e) => {
    assert.ok(isMwiError(e, 'STORAGE'), String(e));
    assert.match(e.message, /altnames|host ?name|ERR_TLS_CERT_ALTNAME_INVALID/i);
    return true;
  });
  const b = await PostgresBackend.open(byName('verify-ca'));
  assert.ok(await usesTls(b));
  await b.close();
});

it('mwi start on PostgreSQL over verify-full TLS with a client certificate; tctl status answers', async () => {
  const cert = join(pg.dir, 'client.crt');
  const key = join(tmp.path, 'client.key');
  const storage = `postgres://mwi_cert@localhost:${pg.port}/mwi?sslmode=verify-full`;
  const auth = await launchAuth({
    clusterName: 'pg-tls.example.com',
    args: ['--storage', storage],
    // the TLS files through libpq's variables, as a systemd unit's Environment= would give them
    env: { PGSSLROOTCERT: pg.caFile, PGSSLCERT: cert, PGSSLKEY: key },
  });
  try {
    const status = await cli('tctl', ['--data-dir', auth.dataDir, 'status', '--format', 'json']);
    assert.equal(status.code, 0, status.stderr);
    assert.equal(JSON.parse(status.stdout).ca_pin, auth.caPin);
  } finally {
    await auth.stop();
  }
});
