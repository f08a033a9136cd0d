// A real PostgreSQL 15 server for tests and benchmarks: initialised in a temp dir, run on
// 127.0.0.1 on a free port, stopped at the end. Each test file starts its own (test files run two
// at a time), and each test can have a database of its own on it (`createDatabase`).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { freePort } from './sshd.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { run } from './procs.js';

/**
 * Debian's PostgreSQL 15 programs, named explicitly: Debian keeps initdb, pg_ctl and postgres
 * out of PATH (its pg_wrapper only covers the client tools), and a /usr/local/bin/initdb found on
 * one machine is only a symlink someone made into this directory: a path that exists on every
 * Debian machine with the `postgresql` package (scripts/test.sh installs it) is the one to use.
 */
export const PG_BIN = process.env.MWI_TEST_PG_BIN ?? '/usr/lib/postgresql/15/bin';

export interface PgServer {
  host: '127.0.0.1';
  port: number;
  /** The temp dir: data dir, socket, TLS files. */
  dir: string;
  /** The server's CA certificate file (with `tls`). */
  caFile: string;
  /** A URL for database `db` as the superuser `postgres` (sslmode=disable). */
  url(db: string): string;
  /** Creates a fresh database (a new name each call unless given); returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /** Runs SQL as the superuser on database `db` (default `postgres`). */
  sql(text: string, db?: string): Promise<pg.QueryResult>;
  /** Fast shutdown (what `pg_ctl stop -m fast` does): connections are cut, the data stays. */
  halt(): Promise<void>;
  /** Starts it again on the same port and data. */
  resume(): Promise<void>;
  /** Stops it and removes the temp dir. */
  stop(): Promise<void>;
}

export interface PgOptions {
  /**
   * Serve TLS (a CA and a server certificate for 127.0.0.1 and localhost made here, `caFile`; the
   * server also listens on 127.0.0.2, which the certificate does not name),
   * with roles `mwi_cert` (client certificate only: `cert` in pg_hba) and `mwi_pw` (password
   * `secret-pw`, scram-sha-256) besides the superuser, who needs no password from 127.0.0.1.
   */
  tls?: boolean;
  /**
   * PostgreSQL's own durable defaults (fsync, full page writes, synchronous commit), for
   * benchmarks; tests run without fsync (what they check is not durability against a power cut).
   */
  durable?: boolean;
}

/** Runs a PostgreSQL program as the `postgres` user when we are root (initdb refuses root). */
function owner(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const r = await run('openssl', args, { cwd });
  if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** A CA, a server certificate (localhost, 127.0.0.1) and a client certificate for `mwi_cert`. */
async function makeTls(dir: string): Promise<void> {
  const days = ['-days', '2'];
  await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', ...days,
    '-subj', '/CN=mwi test PostgreSQL CA', '-keyout', 'ca.key', '-out', 'ca.crt'], dir); // prettier-ignore
  for (const [name, subj, ext] of [
    ['server', '/CN=localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
    ['client', '/CN=mwi_cert', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    await openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', subj,
      '-keyout', `${name}.key`, '-out', `${name}.csr`], dir); // prettier-ignore
    writeFileSync(join(dir, `${name}.ext`), `${ext}\n`);
    await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
      ...days, '-extfile', `${name}.ext`, '-out', `${name}.crt`], dir); // prettier-ignore
    chmodSync(join(dir, `${name}.key`), 0o600);
  }
}

/** Starts a PostgreSQL 15 server of its own (see PgServer). */
export async function startPostgres(opts: PgOptions = {}): Promise<PgServer> {
  if (!existsSync(join(PG_BIN, 'postgres')))
    throw new Error(
      `PostgreSQL 15 is not installed (${PG_BIN}): scripts/test.sh installs it (apt-get install postgresql)`,
    );
  const dir = mkdtempSync(join(tmpdir(), 'mwi-pg-'));
  const data = join(dir, 'data');
  const as = owner();
  if (opts.tls) await makeTls(dir);
  if (as) {
    chownSync(dir, as.uid, as.gid);
    for (const f of ['server.key', 'server.crt', 'ca.crt'])
      if (existsSync(join(dir, f))) chownSync(join(dir, f), as.uid, as.gid);
  }
  const init = await runAs(join(PG_BIN, 'initdb'),
    ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C', '--no-sync'], as); // prettier-ignore
  if (init.code !== 0) throw new Error(`initdb failed: ${init.out}`);
  // the superuser needs no password on loopback; the two test roles each need their own credential
  const hba = [
    'local all all trust',
    ...(opts.tls ? ['hostssl all mwi_cert 127.0.0.0/8 cert', 'host all mwi_pw 127.0.0.0/8 scram-sha-256'] : []),
    'host all all 127.0.0.0/8 trust',
  ];
  writeFileSync(join(data, 'pg_hba.conf'), `${hba.join('\n')}\n`);
  const conf = [
    // with TLS also 127.0.0.2: an address the server certificate does not name
    `listen_addresses = '127.0.0.1${opts.tls ? ',127.0.0.2' : ''}'`,
    `unix_socket_directories = '${dir}'`,
    // a test server: durability against a machine crash is not what is tested
    ...(opts.durable ? [] : ['fsync = off', 'full_page_writes = off']),
    'max_connections = 300',
    'shared_buffers = 32MB',
    ...(opts.tls
      ? [
          'ssl = on',
          `ssl_cert_file = '${dir}/server.crt'`,
          `ssl_key_file = '${dir}/server.key'`,
          `ssl_ca_file = '${dir}/ca.crt'`,
        ]
      : []),
  ];
  writeFileSync(join(data, 'postgresql.auto.conf'), `${conf.join('\n')}\n`);
  if (as) chownSync(join(data, 'postgresql.auto.conf'), as.uid, as.gid);

  let port = 0;
  let child: ChildProcess | undefined;
  const kill = () => child?.kill('SIGKILL');
  process.once('exit', kill);
  const launch = async () => {
    child = spawn(join(PG_BIN, 'postgres'), ['-D', data, '-p', String(port)], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(as ?? {}),
    });
    let log = '';
    child.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const proc = child;
    await new Promise<void>((resolve, reject) => {
      const t = setInterval(() => {
        if (log.includes('database system is ready to accept connections')) {
          clearInterval(t);
          resolve();
        } else if (proc.exitCode !== null || proc.signalCode !== null) {
          clearInterval(t);
          reject(new Error(`postgres exited: ${log}`));
        }
      }, 20);
    });
  };
  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (err) {
      // another test file may have taken the port between our look and the bind
      if (attempt >= 3) throw err;
    }
  }
  const url = (db: string) => `postgres://postgres@127.0.0.1:${port}/${db}?sslmode=disable`;
  const sql = async (text: string, db = 'postgres') => {
    const c = new pg.Client({ connectionString: url(db) });
    await c.connect();
    try {
      return await c.query(text);
    } finally {
      await c.end();
    }
  };
  if (opts.tls)
    await sql("CREATE ROLE mwi_cert LOGIN SUPERUSER; CREATE ROLE mwi_pw LOGIN SUPERUSER PASSWORD 'secret-pw'");
  let n = 0;
  const halt = async () => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const done = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGINT');
    await done;
  };
  return {
    host: '127.0.0.1',
    port,
    dir,
    caFile: join(dir, 'ca.crt'),
    url,
    sql,
    async createDatabase(name) {
      const db = name ?? `t${process.pid}_${n++}`;
      await sql(`CREATE DATABASE ${db}`);
      return url(db);
    },
    halt,
    resume: launch,
    async stop() {
      await halt();
      process.off('exit', kill);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function runAs(
  cmd: string,
  args: string[],
  as: { uid: number; gid: number } | undefined,
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(as ?? {}), cwd: tmpdir() });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}
