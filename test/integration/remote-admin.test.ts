import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AdminClient } from '../../src/api/admin-client.js';
import { ApiClient } from '../../src/api/client.js';
import { readIdentityFile } from '../../src/api/local.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { cli, type RunResult } from '../helpers/procs.js';
import { anonymousCall } from '../helpers/raw-api.js';

/**
 * tctl auth sign --admin: an operator identity, used from "another machine" (tctl with
 * --auth-server and -i only, no data dir), audited under the operator's name, revoked by a lock.
 */
describe('remote administration with an operator identity', () => {
  let c: TestCluster;
  /** tctl as on another machine: no data dir to fall back on. */
  const remote = (file: string, args: string[]): Promise<RunResult> =>
    cli('tctl', ['--auth-server', c.addr, '-i', file, ...args], {
      env: { MWI_DATA_DIR: join(c.dir, 'no-such-dir'), TELEPORT_AUTH_SERVER: '', TELEPORT_IDENTITY_FILE: '' },
    });

  before(async () => {
    c = await startCluster('remote.example');
    await c.addBot('robot', ['deploy']);
  });
  after(async () => c?.stop());

  it('sign, then status and bots ls from elsewhere, each use audited under the operator', async () => {
    const file = join(c.dir, 'alice.json');
    const out = await c.tctlOk(['auth', 'sign', '--admin', '--user', 'alice', '--ttl', '2h', '--out', file]);
    assert.match(out, /The operator identity of "alice" is in .*alice\.json \(0600\)/);
    assert.match(out, /tctl lock --user alice/);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const id = readIdentityFile(file)!;
    const cert = new X509Certificate(id.cert);
    assert.match(cert.subject, /CN=alice/);
    const lifetime = Date.parse(cert.validTo) - Date.now();
    assert.ok(lifetime > 7100_000 && lifetime <= 7200_000, `valid for ${lifetime} ms`);

    const status = await remote(file, ['status']);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /Cluster {2}remote\.example/);
    const bots = await remote(file, ['bots', 'ls']);
    assert.equal(bots.code, 0, bots.stderr);
    assert.match(bots.stdout, /robot/);
    // what an operator changes carries its name, as every use does
    assert.equal((await remote(file, ['lock', '--user', 'bot-robot', '--ttl', '1m'])).code, 0);

    const events = JSON.parse(await c.tctlOk(['audit', 'ls', '--format', 'json', '--limit', '100']));
    const issued = events.find((e: any) => e.resource === 'operator_identity/alice');
    assert.equal(issued.user, 'admin');
    const uses = events.filter((e: any) => e.event === 'admin.request' && e.user === 'alice');
    const routes = uses.map((e: any) => e.route);
    assert.ok(routes.includes('GET /v1/admin/status'), routes.join(', '));
    assert.ok(routes.includes('GET /v1/admin/resources/:kind'), routes.join(', '));
    for (const u of uses) assert.equal(u.success, true);
    const lock = events.find((e: any) => e.event === 'lock.created');
    assert.equal(lock.user, 'alice');
    assert.equal(lock.request_id, uses.find((u: any) => u.route === 'POST /v1/admin/resources').request_id);
    // the audit table names the actor too
    assert.match(await c.tctlOk(['audit', 'ls', '--limit', '5']), /\(by alice\)/);
  });

  it('an identity file others may read works, with a warning to chmod it', async () => {
    const file = join(c.dir, 'ivy.json');
    await c.tctlOk(['auth', 'sign', '--admin', '--user', 'ivy', '--out', file]);
    const quiet = await remote(file, ['status']);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.doesNotMatch(quiet.stderr, /warning/);
    chmodSync(file, 0o644);
    const r = await remote(file, ['status']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: .*ivy\.json holds a private key and others may read it \(mode 0644\): chmod 600/);
  });

  it('a lock on the operator refuses the same command; removing it lets it through again', async () => {
    const file = join(c.dir, 'bob.json');
    await c.tctlOk(['auth', 'sign', '--admin', '--user', 'bob', '--out', file]);
    assert.equal((await remote(file, ['status'])).code, 0);
    const created = /Created a lock with name "([^"]+)"/.exec(
      await c.tctlOk(['lock', '--user', 'bob', '--message', 'laptop stolen']),
    )![1]!;
    const refused = await remote(file, ['status']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /operator identity bob is locked: laptop stolen/);
    const events = JSON.parse(await c.tctlOk(['audit', 'ls', '--format', 'json', '--type', 'admin.request']));
    assert.ok(events.some((e: any) => e.user === 'bob' && !e.success && /locked/.test(e.reason)));
    // the local admin identity cannot be locked, and is not refused by an operator's lock
    assert.equal((await c.tctl(['lock', '--user', 'admin'])).code, 2);
    await c.tctlOk(['locks', 'rm', created]);
    // locks reach the cache through the storage watch
    for (let i = 0; i < 50 && (await remote(file, ['status'])).code !== 0; i++)
      await new Promise((r) => setTimeout(r, 100));
    assert.equal((await remote(file, ['status'])).code, 0);
  });

  it('an expired operator identity is refused, by tctl saying why and by the Auth Service', async () => {
    const file = join(c.dir, 'carol.json');
    await c.tctlOk(['auth', 'sign', '--admin', '--user', 'carol', '--ttl', '2s', '--out', file]);
    assert.equal((await remote(file, ['status'])).code, 0);
    await new Promise((r) => setTimeout(r, 2500));
    const r = await remote(file, ['status']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the identity in .*carol\.json expired at .*: an operator identity is signed anew/);
    // the Auth Service refuses the certificate itself, whatever the client checks
    const id = readIdentityFile(file)!;
    const admin = new AdminClient(
      new ApiClient({ addrs: [c.addr], tls: { ca: id.ca_certs, cert: id.cert, key: id.key } }),
    );
    try {
      await assert.rejects(admin.status());
    } finally {
      admin.close();
    }
  });

  it('only the local admin identity signs; bad requests are refused naming the flag, and nothing is written', async () => {
    const file = join(c.dir, 'dave.json');
    await c.tctlOk(['auth', 'sign', '--admin', '--user', 'dave', '--out', file]);
    const out = join(c.dir, 'eve.json');
    const bySigned = await remote(file, ['auth', 'sign', '--admin', '--user', 'eve', '--out', out]);
    assert.equal(bySigned.code, 1);
    assert.match(
      bySigned.stderr,
      /an operator identity cannot sign identities: run tctl auth sign --admin on the Auth Service host/,
    );
    const refused: Array<[string[], RegExp]> = [
      [['--admin', '--user', 'eve', '--out', out, '--ttl', '25h'], /^ERROR: --ttl: at most 24h/],
      [['--admin', '--user', 'eve', '--out', out, '--ttl', 'soon'], /^ERROR: --ttl: expected a duration/],
      [['--admin', '--user', 'admin', '--out', out], /^ERROR: --user: "admin" is the local admin identity/],
      [['--admin', '--user', 'bot-x', '--out', out], /^ERROR: --user: "bot-NAME" is how a lock names bot NAME/],
      [['--admin', '--user', 'eve'], /^ERROR: --out: is required/],
      [['--admin', '--out', out], /^ERROR: --user: is required/],
      [
        ['--user', 'eve', '--out', out],
        /^ERROR: --user: mwi has no users: Teleport's "tctl auth sign --user NAME" becomes/,
      ],
      [
        ['--admin', '--user', 'eve', '--out', out, '--format', 'openssh'],
        /^ERROR: --format: an operator identity has one format/,
      ],
    ];
    for (const [args, message] of refused) {
      const r = await c.tctl(['auth', 'sign', ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    assert.equal(existsSync(out), false);
    // Teleport's --format file is the one format there is
    await c.tctlOk(['auth', 'sign', '--admin', '--user', 'eve', '--out', out, '--format', 'file']);
    assert.ok(JSON.parse(readFileSync(out, 'utf8')).key.includes('PRIVATE KEY'));
  });
});

describe('host certificates: signed on the Auth Service host only, for host names only', () => {
  let c: TestCluster;
  before(async () => {
    c = await startCluster('hosts.example');
  });
  after(async () => c?.stop());

  it('an operator identity is refused; a pattern principal is refused for everyone; nothing is written', async () => {
    const hostKey = join(c.dir, 'host_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
    const file = join(c.dir, 'gina.json');
    await c.tctlOk(['auth', 'sign', '--admin', '--user', 'gina', '--out', file]);
    const out = join(c.dir, 'host-cert.pub');
    const sign = (host: string) => ['auth', 'sign', '--host', host, '--public-key', `${hostKey}.pub`, '--out', out];
    const byOperator = await cli(
      'tctl',
      ['--auth-server', c.addr, '-i', file, ...sign('db1.example'), '--ttl', '8760h'],
      { env: { MWI_DATA_DIR: join(c.dir, 'no-such-dir'), TELEPORT_AUTH_SERVER: '', TELEPORT_IDENTITY_FILE: '' } },
    );
    assert.equal(byOperator.code, 1, byOperator.stderr);
    assert.match(
      byOperator.stderr,
      /an operator identity cannot sign host certificates .*run tctl auth sign --host on/,
    );
    for (const host of ['x,*', 'db?.example', '!db1', '*.example.com']) {
      const r = await c.tctl(sign(host));
      assert.equal(r.code, 2, `${host}: ${r.stderr}`);
      assert.match(
        r.stderr,
        /^ERROR: --host: .* is not a host name or IP address: a host principal may not hold a pattern/,
      );
    }
    assert.equal(existsSync(out), false);
    await c.tctlOk(sign('db1.example,10.0.0.7,::1'));
    assert.match(readFileSync(out, 'utf8'), /^ssh-ed25519-cert-v01@openssh\.com /);
  });
});

describe('operator identities and connection_limits', () => {
  let c: TestCluster;
  before(async () => {
    c = await startCluster('limits.example', 'connection_limits:\n  rates: [{ period: 1h, average: 1, burst: 2 }]\n');
  });
  after(async () => c?.stop());

  it('an operator draws on its own bucket, the local admin on none; once locked, on its address', async () => {
    const file = join(c.dir, 'frank.json');
    await c.tctlOk(['auth', 'sign', '--admin', '--user', 'frank', '--out', file]);
    const id = readIdentityFile(file)!;
    // one request per new connection, as the operator's tctl makes them (tctl itself would wait
    // out a 429's Retry-After)
    const status = () => anonymousCall(c.addr, c.caPin, 'GET', '/v1/admin/status', undefined, id);
    for (let i = 0; i < 2; i++) assert.equal((await status()).status, 200, `request ${i + 1}`);
    // every operator request writes an audit line: a stolen identity must not rotate the log away
    const over = await status();
    assert.equal(over.status, 429);
    assert.match(over.json.error.message, /too many requests from this operator identity/);
    // its own bucket: not its address's, and the local admin identity draws on none
    for (let i = 0; i < 4; i++) await c.tctlOk(['status']);
    await c.tctlOk(['lock', '--user', 'frank']);
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push(await status());
    assert.equal(answers[0]!.status, 403);
    assert.match(answers[0]!.json.error.message, /operator identity frank is locked/);
    assert.equal(answers[2]!.status, 429);
    assert.match(answers[2]!.json.error.message, /too many requests from this address/);
  });
});
