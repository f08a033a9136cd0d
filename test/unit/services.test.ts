import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import type { BotIdentity } from '../../src/agent/bot-identity.js';
import type { TbotConfig } from '../../src/agent/config.js';
import { DESTINATION_TYPES, destinationPaths, openDestination } from '../../src/agent/destinations/index.js';
import { Metrics } from '../../src/agent/diagnostics.js';
import { OUTPUT_TYPES } from '../../src/agent/outputs/index.js';
import { entryOf, unionOf, type Typed } from '../../src/agent/registry.js';
import { LoopService, type BotDeps, type LoopSpec } from '../../src/agent/service.js';
import { SERVICE_TYPES } from '../../src/agent/services/index.js';
import { MwiError } from '../../src/errors.js';
import type { Logger } from '../../src/util/log.js';

const EXPIRES = '2030-01-02T03:04:05.000Z';

/** A bag whose bot identity is a fake: a fixed credential, and renewals the test fires. */
function fakeBag() {
  const listeners: Array<() => void> = [];
  const fake = { current: { expires: EXPIRES }, onRenewed: (fn: () => void) => listeners.push(fn) };
  const botIdentity = fake as unknown as BotIdentity;
  const lines: string[] = [];
  const log: Logger = {
    debug() {},
    info() {},
    warn: (m) => lines.push(`WARN ${m}`),
    error: (m) => lines.push(`ERROR ${m}`),
  };
  const deps: BotDeps = {
    cfg: { credentialTtlMs: 3_600_000, renewalIntervalMs: 1_200_000 } as TbotConfig,
    log,
    botIdentity,
    metrics: new Metrics(),
    openDestination,
    resumed: false,
    startedAt: Date.now(),
  };
  return { deps, lines, renewed: () => listeners.forEach((fn) => fn()) };
}

const spec = (job: () => Promise<void>, extra: Partial<LoopSpec> = {}): LoopSpec => ({
  label: 'job x',
  intervalMs: 60_000,
  retry: { initialMs: 5, maxMs: 5 },
  counters: { ok: 'ok_total', failed: 'failed_total' },
  job,
  ...extra,
});

describe('the service contract (LoopService)', () => {
  it('counts runs, refreshes the expiry gauge, retries failures and reports health', async () => {
    const { deps, lines } = fakeBag();
    const ac = new AbortController();
    let calls = 0;
    const s = new LoopService(
      'x',
      deps,
      spec(async () => {
        if (++calls === 1) throw new Error('down');
        ac.abort();
      }),
    );
    assert.equal(s.health.status, 'initializing');
    await s.run(ac.signal);
    assert.equal(calls, 2);
    assert.equal(deps.metrics.counters.get('ok_total'), 1);
    assert.equal(deps.metrics.counters.get('failed_total'), 1);
    assert.equal(deps.metrics.gauges.get('tbot_identity_expiry_timestamp_seconds'), Date.parse(EXPIRES) / 1000);
    assert.equal(s.health.status, 'healthy');
    assert.deepEqual(lines, ['WARN job x failed, retrying']);
  });

  it('a refusal for good is not retried: run rejects with it, so tbot stops', async () => {
    const { deps, lines } = fakeBag();
    const refusal = new MwiError('LOCKED', 'locked');
    let calls = 0;
    const s = new LoopService(
      'x',
      deps,
      spec(async () => {
        calls++;
        throw refusal;
      }),
    );
    await assert.rejects(s.run(new AbortController().signal), (e) => e === refusal);
    assert.equal(calls, 1);
    assert.equal(deps.metrics.counters.get('failed_total'), 1);
    assert.deepEqual(lines, ['ERROR job x: refused by the Auth Service; stopping']);
  });

  it('a best-effort service retries even a refusal, and counts nothing without counters', async () => {
    const { deps } = fakeBag();
    const ac = new AbortController();
    let calls = 0;
    const s = new LoopService(
      'x',
      deps,
      spec(
        async () => {
          if (++calls < 3) throw new MwiError('ACCESS_DENIED', 'no');
          ac.abort();
        },
        { bestEffort: true, counters: undefined },
      ),
    );
    await s.run(ac.signal);
    assert.equal(calls, 3);
    assert.equal(deps.metrics.counters.size + deps.metrics.gauges.size, 0);
  });

  it('afterRenewal: a renewal of the bot identity runs it now; trigger() too', async () => {
    const { deps, renewed } = fakeBag();
    const ac = new AbortController();
    let calls = 0;
    let wake: () => void = () => {};
    const s = new LoopService(
      'x',
      deps,
      spec(
        async () => {
          calls++;
          wake();
        },
        { runFirst: false, afterRenewal: true },
      ),
    );
    const ran = () => new Promise<void>((r) => (wake = r));
    const done = s.run(ac.signal);
    let next = ran();
    renewed();
    await next;
    next = ran();
    s.trigger();
    await next;
    ac.abort();
    await done;
    assert.equal(calls, 2);
  });

  it('oneShot: the job once, unless the service has its own pass', async () => {
    const { deps } = fakeBag();
    const seen: string[] = [];
    const job = async () => void seen.push('job');
    await new LoopService('x', deps, spec(job)).oneShot();
    await new LoopService('y', deps, spec(job, { oneShot: async () => void seen.push('once') })).oneShot();
    assert.deepEqual(seen, ['job', 'once']);
  });
});

describe('registries', () => {
  const entries: Typed[] = [
    { type: 'a', fields: { x: z.string() } },
    { type: 'b', fields: {} },
  ];

  it('one strict object per type, told apart by `type`; a type mwi does not have is named as such', () => {
    const schema = unionOf(entries, 'output');
    assert.deepEqual(schema.parse({ type: 'a', x: '1' }), { type: 'a', x: '1' });
    assert.equal(schema.safeParse({ type: 'b', x: '1' }).success, false);
    assert.equal(schema.safeParse({ type: 'c' }).success, false);
    assert.equal(entryOf(entries, 'b'), entries[1]);
    assert.throws(() => entryOf(entries, 'c'), TypeError);
    assert.throws(() => unionOf([], 'output'), TypeError);
    for (const s of [schema, unionOf([entries[1]!], 'output')]) {
      const r = s.safeParse({ type: 'database', service: 'pg' });
      assert.equal(r.success, false);
      assert.deepEqual(r.error?.issues[0]?.path, ['type']);
      assert.match(r.error?.issues[0]?.message ?? '', /^mwi has no output type "database" \(it has: /);
    }
  });

  it("tbot's registries: destinations directory, memory and kubernetes_secret; identity as an output and as a service", () => {
    assert.deepEqual(
      DESTINATION_TYPES.map((d) => d.type),
      ['directory', 'memory', 'kubernetes_secret'],
    );
    assert.deepEqual(
      OUTPUT_TYPES.map((o) => o.type),
      ['identity', 'ssh_host', 'database', 'workload-identity-x509', 'workload-identity-jwt'],
    );
    assert.deepEqual(
      SERVICE_TYPES.map((o) => o.type),
      ['identity', 'ssh_host', 'database', 'workload-identity-x509', 'workload-identity-jwt', 'workload-identity-api'],
    );
  });

  it('each destination names the directories it writes', () => {
    const dir = { type: 'directory', path: '/x' };
    assert.deepEqual(destinationPaths(dir), ['/x']);
    assert.deepEqual(destinationPaths({ type: 'memory' }), []);
    assert.deepEqual(destinationPaths({ type: 'kubernetes_secret', name: 'tbot' } as never), []);
    assert.equal(openDestination({ type: 'memory' }).description, 'memory');
  });
});
