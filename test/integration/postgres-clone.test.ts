// `mwi backend clone`: a SQLite deployment moved to PostgreSQL keeps its CAs, bots and instances,
// so tbots that joined before go on renewing against the Auth Service on PostgreSQL.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { launchAuth } from '../helpers/launch-auth.js';
import { startPostgres, type PgServer } from '../helpers/postgres.js';
import { cli } from '../helpers/procs.js';

let pg: PgServer;
let cluster: TestCluster;
before(async () => {
  [pg, cluster] = await Promise.all([startPostgres(), startCluster('move.example.com')]);
});
after(async () => {
  await cluster?.stop();
  await pg?.stop();
});

it('mwi backend clone: SQLite into PostgreSQL; the Auth Service on it has the same CAs, bots and instances', async () => {
  const token = await cluster.addBot('mover', ['deploy']);
  const storage = join(cluster.dir, 'bot');
  const first = await cli('tbot', [
    'start',
    ...tbotFlags(cluster, token, storage, join(cluster.dir, 'out')),
    '--oneshot',
  ]);
  assert.equal(first.code, 0, first.stderr);
  await cluster.halt();
  const url = await pg.createDatabase();
  const db = join(cluster.dataDir, 'mwi.db');
  const clone = await cli('mwi', ['backend', 'clone', '--from', `sqlite://${db}`, '--to', url]);
  assert.equal(clone.code, 0, clone.stderr);
  assert.match(
    clone.stdout,
    /^cloned \d+ items from sqlite:\/\/\S+mwi\.db to postgres:\/\/postgres@127\.0\.0\.1:\d+\/\w+\n$/,
  );

  // into a storage that holds data: refused, nothing written
  const again = await cli('mwi', ['backend', 'clone', '--data-dir', cluster.dataDir, '--to', url]);
  assert.equal(again.code, 2);
  assert.match(
    again.stderr,
    /^ERROR: --to: the destination already holds data \(\/\S+, \.\.\.\): .*--force writes over/,
  );
  const forced = await cli('mwi', ['backend', 'clone', '--data-dir', cluster.dataDir, '--to', url, '--force']);
  assert.equal(forced.code, 0, forced.stderr);

  const auth = await launchAuth({ clusterName: 'move.example.com', args: ['--storage', url] });
  try {
    assert.equal(auth.caPin, cluster.caPin, 'the same CAs');
    const bots = await cli('tctl', ['--data-dir', auth.dataDir, 'bots', 'ls', '--format', 'json']);
    assert.ok(JSON.parse(bots.stdout).some((b: { metadata: { name: string } }) => b.metadata.name === 'mover'));
    // the tbot that joined the SQLite Auth Service renews with the one on PostgreSQL
    const flags = ['--auth-server', auth.addr, '--ca-pin', auth.caPin, '--data-dir', storage];
    const renew = await cli('tbot', ['start', ...flags, '--destination-dir', join(cluster.dir, 'out'), '--oneshot']);
    assert.equal(renew.code, 0, renew.stderr);
    assert.match(renew.stderr, /generation=2/);
  } finally {
    await auth.stop();
  }
});

it('mwi backend clone: bad input is refused naming the flag, exit 2', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['--to', pg.url('postgres')], /^ERROR: --from: no such SQLite database \/nonexistent\/mwi\.db\n$/],
    [[], /^ERROR: --to: the storage to copy into/],
    [['--from', 'memory://', '--to', pg.url('postgres')], /^ERROR: --from: memory:\/\/ storage is empty/],
    [
      ['--to', 'mysql://db/mwi', '--from', 'sqlite:///etc/hostname'],
      /^ERROR: --to: unsupported storage "mysql:\/\/db\/mwi"/,
    ],
    [
      ['--to', 'postgres://h?sslmode=strict', '--from', 'sqlite:///etc/hostname'],
      /^ERROR: --to: invalid sslmode "strict"/,
    ],
  ];
  for (const [args, pattern] of cases) {
    const r = await cli('mwi', ['backend', 'clone', '--data-dir', '/nonexistent', ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
  }
});
