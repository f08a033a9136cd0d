import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AuthMetrics } from '../../src/auth/metrics.js';
import { MemoryBackend } from '../../src/storage/memory.js';
import { mergeSnapshots, MetricsRegistry, renderPrometheus } from '../../src/util/metrics.js';

/** The value of one sample line of Prometheus text, or undefined when the series is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('metrics registry (Prometheus text, no dependency)', () => {
  it('counters, gauges and histograms render in the text format, zeroed series included', () => {
    const r = new MetricsRegistry();
    const c = r.counter('x_total', 'Things.\nAnd more.', ['kind']);
    c.zero({ kind: 'a' });
    c.inc({ kind: 'b' }, 2);
    c.inc({ kind: 'q"\\\n' });
    r.gauge('g', 'A gauge.').set(-3.5);
    const h = r.histogram('lat_seconds', 'Latency.', ['route'], [0.1, 1]);
    h.zero({ route: 'idle' });
    h.observe(0.05, { route: 'r' });
    h.observe(0.5, { route: 'r' });
    h.observe(5, { route: 'r' });
    const text = r.render();
    assert.match(text, /^# HELP x_total Things\.\\nAnd more\.\n# TYPE x_total counter\n/);
    assert.equal(sample(text, 'x_total{kind="a"}'), 0);
    assert.equal(sample(text, 'x_total{kind="b"}'), 2);
    // label values are escaped: a caller's text cannot break the format
    assert.equal(sample(text, 'x_total{kind="q\\"\\\\\\n"}'), 1);
    assert.equal(sample(text, 'g'), -3.5);
    assert.match(text, /# TYPE lat_seconds histogram/);
    // buckets are cumulative, +Inf is the count
    assert.equal(sample(text, 'lat_seconds_bucket{route="r",le="0.1"}'), 1);
    assert.equal(sample(text, 'lat_seconds_bucket{route="r",le="1"}'), 2);
    assert.equal(sample(text, 'lat_seconds_bucket{route="r",le="+Inf"}'), 3);
    assert.equal(sample(text, 'lat_seconds_count{route="r"}'), 3);
    assert.equal(sample(text, 'lat_seconds_sum{route="r"}'), 5.55);
    assert.equal(sample(text, 'lat_seconds_count{route="idle"}'), 0);
    assert.ok(text.endsWith('\n'));
  });

  it('misuse is a TypeError: unknown label, duplicate name, a counter going down', () => {
    const r = new MetricsRegistry();
    const c = r.counter('a_total', 'A.', ['x']);
    assert.throws(() => c.inc({ y: '1' }), TypeError);
    assert.throws(() => c.inc({}, -1), TypeError);
    assert.throws(() => r.counter('a_total', 'again'), TypeError);
    assert.throws(() => r.counter('bad-name', 'B.'), TypeError);
    assert.throws(() => r.histogram('h', 'H.', [], [1, 1]), TypeError);
  });

  it('snapshots of several processes merge: counters and histograms add up, gauges by their rule', () => {
    const make = (n: number, instances: number, expiry: number) => {
      const r = new MetricsRegistry();
      r.counter('joins_total', 'J.', ['m']).inc({ m: 'token' }, n);
      r.gauge('instances', 'I.', [], 'max').set(instances);
      r.gauge('expiry_seconds', 'E.', [], 'min').set(expiry);
      r.gauge('open', 'O.').set(n);
      r.histogram('lat', 'L.', [], [1]).observe(n);
      return r.snapshot();
    };
    const text = renderPrometheus(mergeSnapshots([make(1, 7, 100), make(2, 7, 90)]));
    assert.equal(sample(text, 'joins_total{m="token"}'), 3);
    assert.equal(sample(text, 'instances'), 7);
    assert.equal(sample(text, 'expiry_seconds'), 90);
    assert.equal(sample(text, 'open'), 3);
    assert.equal(sample(text, 'lat_bucket{le="1"}'), 1);
    assert.equal(sample(text, 'lat_count'), 2);
    assert.equal(sample(text, 'lat_sum'), 3);
    // a snapshot survives the IPC channel (structured clone of plain JSON)
    assert.deepEqual(JSON.parse(JSON.stringify(make(1, 1, 1))), make(1, 1, 1));
  });
});

describe('the Auth Service metrics', () => {
  const methods = new Map<string, { challenge?: unknown }>([
    ['token', {}],
    ['bound_keypair', { challenge: () => {} }],
  ]);

  it('every known series exists from the start, at zero', () => {
    const m = new AuthMetrics();
    m.init(methods, ['POST /v1/join']);
    const text = m.registry.render();
    for (const s of [
      'mwi_joins_total{method="token",result="success"}',
      'mwi_joins_total{method="token",result="failure"}',
      'mwi_renewals_total{method="bound_keypair",result="success"}',
      'mwi_join_challenges_total{method="bound_keypair",result="failure"}',
      'mwi_refusals_total{reason="join_denied"}',
      'mwi_refusals_total{reason="rate_limited"}',
      'mwi_refusals_total{reason="connection_limit"}',
      'mwi_certificates_issued_total{kind="bot_identity"}',
      'mwi_certificates_issued_total{kind="operator"}',
      'mwi_request_duration_seconds_count{route="POST /v1/join"}',
      'mwi_storage_operation_duration_seconds_count{operation="get"}',
    ])
      assert.equal(sample(text, s), 0, s);
    // a method without a challenge step has no challenge series; 5xx codes are not refusals
    assert.equal(sample(text, 'mwi_join_challenges_total{method="token",result="failure"}'), undefined);
    assert.equal(sample(text, 'mwi_refusals_total{reason="internal"}'), undefined);
  });

  it('counts from audit events; a method name from a caller never makes a new series', () => {
    const m = new AuthMetrics();
    m.init(methods, []);
    m.observeEvent({ event: 'bot.join', success: true, join_method: 'token' });
    m.observeEvent({ event: 'bot.join', success: false, join_method: 'token' });
    m.observeEvent({ event: 'bot.join', success: false, join_method: 'x'.repeat(100) });
    m.observeEvent({ event: 'bot.join', success: false });
    m.observeEvent({ event: 'bot.renew', success: true, join_method: 'bound_keypair' });
    m.observeEvent({ event: 'bot.renew', success: false });
    m.observeEvent({ event: 'bot.certs', success: true, tls_serial: 'ab', ssh_serial: '1' });
    m.observeEvent({ event: 'bot.certs', success: false });
    m.observeEvent({ event: 'resource.created', success: true, resource: 'host_cert/web' });
    m.observeEvent({ event: 'resource.created', success: true, resource: 'operator_identity/alice' });
    m.observeEvent({ event: 'resource.created', success: true, resource: 'role/dev' });
    m.refused('JOIN_DENIED');
    m.refused('connection_limit');
    const text = m.registry.render();
    assert.equal(sample(text, 'mwi_joins_total{method="token",result="success"}'), 1);
    assert.equal(sample(text, 'mwi_joins_total{method="token",result="failure"}'), 1);
    assert.equal(sample(text, 'mwi_joins_total{method="unknown",result="failure"}'), 2);
    assert.doesNotMatch(text, /xxxx/);
    assert.equal(sample(text, 'mwi_renewals_total{method="bound_keypair",result="success"}'), 1);
    assert.equal(sample(text, 'mwi_renewals_total{method="unknown",result="failure"}'), 1);
    assert.equal(sample(text, 'mwi_certificates_issued_total{kind="bot_identity"}'), 2);
    assert.equal(sample(text, 'mwi_certificates_issued_total{kind="output_tls"}'), 1);
    assert.equal(sample(text, 'mwi_certificates_issued_total{kind="output_ssh"}'), 1);
    assert.equal(sample(text, 'mwi_certificates_issued_total{kind="ssh_host"}'), 1);
    assert.equal(sample(text, 'mwi_certificates_issued_total{kind="operator"}'), 1);
    assert.equal(sample(text, 'mwi_refusals_total{reason="join_denied"}'), 1);
    assert.equal(sample(text, 'mwi_refusals_total{reason="connection_limit"}'), 1);
  });

  it('storage operations are timed through the wrapper, which changes nothing of what they do', async () => {
    const m = new AuthMetrics();
    const b = m.timeBackend(new MemoryBackend());
    await b.put('/a/1', '1');
    await b.create('/a/2', '2');
    await assert.rejects(b.create('/a/2', '2'), /already exists/);
    assert.equal((await b.get('/a/1'))?.value, '1');
    assert.equal((await b.range('/a/')).length, 2);
    const text = m.registry.render();
    assert.equal(sample(text, 'mwi_storage_operation_duration_seconds_count{operation="create"}'), 2);
    assert.equal(sample(text, 'mwi_storage_operation_duration_seconds_count{operation="put"}'), 1);
    assert.equal(sample(text, 'mwi_storage_operation_duration_seconds_count{operation="get"}'), 1);
    await b.close();
  });
});
