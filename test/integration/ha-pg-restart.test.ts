// Acceptance of issue #15: PostgreSQL stopped for 10 s and started again while two replicas take
// joins and renewals. Requests fail fast with a clear error meanwhile, the replicas recover by
// themselves, no acknowledged write is lost and no single-use token is used twice.
import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { isMwiError } from '../../src/errors.js';
import { startHa, TestBot, type HaCluster } from '../helpers/postgres-cluster.js';

interface Op {
  kind: 'join' | 'renew';
  start: number;
  end: number;
  ok: boolean;
  code?: string;
  message?: string;
  token?: number;
  instance?: string;
  bot?: number;
  generation?: number;
}

let ha: HaCluster;
before(async () => {
  // the load comes from one address: no per-source rate limit (a refusal would be retried later,
  // and the timing of each request would be the client's, not the Auth Service's)
  ha = await startHa({ mwiYaml: 'connection_limits:\n  rates: [{period: 1s, average: 100000, burst: 100000}]\n' });
});
after(async () => ha?.stop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it('PostgreSQL stopped 10 s under load: fast failures, recovery without a restart, nothing acknowledged lost, no token used twice', async () => {
  const [a, b] = ha.replicas.map((r) => [r.addr]) as [string[], string[]];
  await ha.addBot('load');
  const tokens = await ha.tokens('load', 400);
  const renewers = await Promise.all([0, 1, 2, 3].map((i) => TestBot.join(ha.hostCA, i % 2 ? a : b, tokens.pop()!)));
  const ops: Op[] = [];
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  let running = true;
  const record = async (op: Omit<Op, 'start' | 'end' | 'ok'>, fn: () => Promise<Partial<Op>>) => {
    const start = now();
    try {
      ops.push({ ...op, ...(await fn()), start, end: now(), ok: true });
    } catch (err) {
      const code = isMwiError(err) ? err.code : String(err);
      ops.push({ ...op, start, end: now(), ok: false, code, message: (err as Error).message });
    }
  };
  let next = 0;
  /** Tokens whose joins both failed on storage: sent again later, as tbot retries. */
  const again: number[] = [];
  // joins: each token sent to both replicas at once (a double spend, refused on one of them)
  const joiner = async () => {
    while (running && (again.length > 0 || next < tokens.length)) {
      const token = again.shift() ?? next++;
      const before = ops.length;
      await Promise.all(
        [a, b].map((addrs) =>
          record({ kind: 'join', token }, async () => ({
            instance: (await TestBot.join(ha.hostCA, addrs, tokens[token]!)).cred.instance_id,
          })),
        ),
      );
      if (ops.slice(before).every((o) => o.token !== token || o.code === 'STORAGE')) again.push(token);
      await sleep(50);
    }
  };
  const renewer = async (bot: TestBot, i: number) => {
    for (let k = 0; running; k++) {
      await record({ kind: 'renew', bot: i }, async () => ({
        generation: (await bot.renew(k % 2 ? a : b)).generation,
      }));
      await sleep(60);
    }
  };
  const load = Promise.all([joiner(), joiner(), ...renewers.map(renewer)]);
  await sleep(3000);
  await ha.pg.halt();
  // from here until it is started again, PostgreSQL is gone (its shutdown has completed)
  const down = now();
  await sleep(10_000);
  const up = now();
  await ha.pg.resume();
  // PostgreSQL accepts connections again (its start takes a moment, more on a loaded machine)
  const ready = now();
  await sleep(7000);
  running = false;
  await load;

  // while it was down: every request failed, fast, saying the storage is unavailable
  const during = ops.filter((o) => o.start > down && o.start < up);
  assert.ok(during.length > 20, `only ${during.length} requests while PostgreSQL was down`);
  for (const o of during) {
    assert.equal(o.ok, false, `a ${o.kind} succeeded while PostgreSQL was down: ${JSON.stringify(o)}`);
    assert.equal(o.code, 'STORAGE', `${o.kind}: ${o.message}`);
    assert.match(o.message!, /^storage unavailable \(the database is unreachable\)/);
    assert.ok(o.end - o.start < 6000, `a ${o.kind} took ${(o.end - o.start).toFixed(0)} ms to fail`);
  }
  const slowest = Math.max(...during.map((o) => o.end - o.start));
  console.log(`while PostgreSQL was down: ${during.length} requests failed, the slowest in ${slowest.toFixed(0)} ms`);
  // recovered by themselves: what was sent 2 s after PostgreSQL was back succeeded (a double spend aside)
  const late = ops.filter((o) => o.start > ready + 2000);
  assert.ok(late.some((o) => o.kind === 'join') && late.some((o) => o.kind === 'renew'));
  for (const o of late.filter((x) => x.kind === 'renew')) assert.ok(o.ok, `${o.message}`);
  for (const t of new Set(late.filter((o) => o.kind === 'join').map((o) => o.token)))
    assert.equal(late.filter((o) => o.token === t && o.ok).length, 1, `token ${t}: one of its two joins succeeds`);
  const recovered = ops.filter((o) => o.ok && o.end > ready).reduce((m, o) => Math.min(m, o.end - ready), Infinity);
  console.log(`first success ${recovered.toFixed(0)} ms after PostgreSQL accepted connections again`);

  // single use: no token joined twice, whatever the outage did to the requests in flight
  const joins = ops.filter((o) => o.kind === 'join' && o.ok);
  const perToken = new Map<number, number>();
  for (const o of joins) perToken.set(o.token!, (perToken.get(o.token!) ?? 0) + 1);
  assert.ok(
    [...perToken.values()].every((n) => n === 1),
    'a token was used twice',
  );
  for (const o of ops.filter((x) => x.kind === 'join' && !x.ok && x.code !== 'STORAGE'))
    assert.equal(o.code, 'JOIN_DENIED', `${o.message}`);
  // nothing acknowledged lost: every acknowledged join has its instance, every renewal its generation
  for (const r of ha.replicas) {
    const instances = JSON.parse(await r.tctlOk(['bots', 'instances', 'ls', 'load', '--format', 'json'])) as Array<{
      metadata: { name: string };
      status: { generation: number; initial_authentication: { join_token_name: string } };
    }>;
    const byId = new Map(instances.map((i) => [i.metadata.name, i]));
    for (const o of joins) assert.ok(byId.has(o.instance!), `instance ${o.instance} of an acknowledged join is gone`);
    const tokenNames = instances.map((i) => i.status.initial_authentication.join_token_name);
    assert.equal(new Set(tokenNames).size, tokenNames.length, 'two instances from one token');
    renewers.forEach((bot, i) => {
      const acked = Math.max(...ops.filter((o) => o.bot === i && o.ok).map((o) => o.generation!));
      const stored = byId.get(bot.cred.instance_id)!.status.generation;
      assert.ok(stored >= acked, `bot ${i}: generation ${acked} was acknowledged, storage has ${stored}`);
    });
  }
  assert.deepEqual(JSON.parse(await ha.replicas[0]!.tctlOk(['locks', 'ls', '--format', 'json'])), []);
});
