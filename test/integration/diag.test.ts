import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { processSource, serveDiagnostics } from '../../src/auth/diag.js';
import { AuthMetrics } from '../../src/auth/metrics.js';
import { AuthServer } from '../../src/auth/server.js';
import { createLogger } from '../../src/util/log.js';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { cli, waitFor } from '../helpers/procs.js';

/** One plain HTTP request to a diagnostics listener. */
function get(base: string, path: string, method = 'GET'): Promise<{ status: number; text: string; type: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { method, agent: false }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, type: String(res.headers['content-type']) }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The value of a sample of Prometheus text (the line `SERIES VALUE`), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** The address `mwi start --diag-addr` announced. */
async function diagBase(c: TestCluster): Promise<string> {
  return (await waitFor('the diagnostics address', () => /diagnostics .* on (http:\/\/\S+)/.exec(c.proc.out())))[1]!;
}

/** A join that succeeds, then one with the same (used) token, refused. */
async function joinAndRefusal(c: TestCluster, bot: string): Promise<void> {
  const token = await c.addBot(bot, ['deploy']);
  const flags = (n: string) => tbotFlags(c, token, join(c.dir, `${bot}-${n}`), join(c.dir, `${bot}-out-${n}`));
  const ok = await cli('tbot', ['start', ...flags('1'), '--oneshot']);
  assert.equal(ok.code, 0, ok.stderr);
  const refused = await cli('tbot', ['start', ...flags('2'), '--oneshot']);
  assert.equal(refused.code, 1);
}

describe('mwi start --diag-addr: /livez, /readyz, /metrics', () => {
  let c: TestCluster;
  let base: string;
  before(async () => {
    c = await startCluster('diag.example', undefined, ['--diag-addr', '127.0.0.1:0']);
    base = await diagBase(c);
  });
  after(async () => c?.stop());

  it('before any request: live, ready, and every counter already at zero', async () => {
    assert.equal((await get(base, '/livez')).status, 200);
    const ready = await get(base, '/readyz');
    assert.equal(ready.status, 200, ready.text);
    assert.deepEqual(JSON.parse(ready.text), { status: 'ready', checks: { storage: { ok: true }, cas: { ok: true } } });
    const m = await get(base, '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.type, /^text\/plain; version=0\.0\.4/);
    for (const s of [
      'mwi_joins_total{method="token",result="success"}',
      'mwi_joins_total{method="token",result="failure"}',
      'mwi_renewals_total{method="token",result="success"}',
      'mwi_refusals_total{reason="join_denied"}',
      'mwi_certificates_issued_total{kind="bot_identity"}',
      'mwi_request_duration_seconds_count{route="POST /v1/join"}',
    ])
      assert.equal(sample(m.text, s), 0, s);
    assert.equal(sample(m.text, 'mwi_bot_instances'), 0);
    // the CAs are valid for years
    assert.ok(sample(m.text, 'mwi_ca_expiry_seconds{ca="tls-host"}')! > 300 * 24 * 3600);
    assert.ok(sample(m.text, 'mwi_ca_expiry_seconds{ca="tls-user"}')! > 300 * 24 * 3600);
  });

  it('after a join and a refusal, the numbers say so', async () => {
    await joinAndRefusal(c, 'counted');
    const m = (await get(base, '/metrics')).text;
    assert.equal(sample(m, 'mwi_joins_total{method="token",result="success"}'), 1);
    assert.equal(sample(m, 'mwi_joins_total{method="token",result="failure"}'), 1);
    assert.equal(sample(m, 'mwi_refusals_total{reason="join_denied"}'), 1);
    assert.equal(sample(m, 'mwi_bot_instances'), 1);
    // the join's identity, and the identity output's TLS and SSH certificates
    assert.equal(sample(m, 'mwi_certificates_issued_total{kind="bot_identity"}'), 1);
    assert.equal(sample(m, 'mwi_certificates_issued_total{kind="output_tls"}'), 1);
    assert.equal(sample(m, 'mwi_certificates_issued_total{kind="output_ssh"}'), 1);
    assert.equal(sample(m, 'mwi_request_duration_seconds_count{route="POST /v1/join"}'), 2);
    assert.equal(sample(m, 'mwi_request_duration_seconds_count{route="POST /v1/certs"}'), 1);
    assert.ok(sample(m, 'mwi_request_duration_seconds_sum{route="POST /v1/join"}')! > 0);
    // the join consumed its token and created the instance in one transaction
    assert.ok(sample(m, 'mwi_storage_operation_duration_seconds_count{operation="transact"}')! >= 1);
    assert.ok(sample(m, 'mwi_storage_operation_duration_seconds_count{operation="get"}')! >= 1);
  });

  it('answers GET and HEAD only; an unknown path is 404', async () => {
    assert.equal((await get(base, '/metrics', 'POST')).status, 405);
    const head = await get(base, '/livez', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.text, '');
    assert.equal((await get(base, '/nothing')).status, 404);
    assert.equal((await get(base, '/readyz/identity')).status, 404);
  });

  it('a --diag-addr that cannot be bound stops mwi start, exit 2, naming the flag', async () => {
    const port = new URL(base).port;
    const r = await cli('mwi', [
      'start',
      '--data-dir',
      join(c.dir, 'other'),
      '--listen',
      '127.0.0.1:0',
      '--diag-addr',
      `127.0.0.1:${port}`,
    ]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--diag-addr: cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
  });
});

describe('/readyz is 503 with a reason while starting and when storage is unreachable', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mwi-readyz-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('starting, ready, storage closed underneath', async () => {
    const metrics = new AuthMetrics();
    let server: AuthServer | undefined;
    const log = createLogger('test', 'error');
    const diag = await serveDiagnostics(
      '127.0.0.1:0',
      processSource(metrics, () => server),
      log,
    );
    const base = `http://${diag.address}`;
    try {
      const starting = await get(base, '/readyz');
      assert.equal(starting.status, 503);
      assert.match(JSON.parse(starting.text).checks.start.reason, /^starting: storage and CAs not loaded yet/);
      // counters exist before the start too
      assert.equal(sample((await get(base, '/metrics')).text, 'mwi_refusals_total{reason="join_denied"}'), 0);
      server = await AuthServer.start({
        dataDir: join(dir, 'auth'),
        listen: '127.0.0.1:0',
        clusterName: 'readyz.example',
        metrics,
        logger: log,
      });
      assert.equal((await get(base, '/readyz')).status, 200);
      await server.ctx.backend.close();
      const down = await get(base, '/readyz');
      assert.equal(down.status, 503);
      const body = JSON.parse(down.text);
      assert.equal(body.status, 'not ready');
      assert.equal(body.checks.cas.ok, true);
      assert.match(body.checks.storage.reason, /^storage unreachable: /);
    } finally {
      await diag.close();
      await server?.close().catch(() => {});
    }
  });
});

describe('--diag-addr with --workers 2: the first process sums its workers', () => {
  let c: TestCluster;
  let base: string;
  before(async () => {
    c = await startCluster('diag-workers.example', undefined, ['--workers', '2', '--diag-addr', '127.0.0.1:0']);
    base = await diagBase(c);
  });
  after(async () => c?.stop());

  it('readiness of each worker; counters of both, whichever served each request', async () => {
    const ready = await waitFor('both workers ready', async () => {
      const r = await get(base, '/readyz');
      return r.status === 200 ? JSON.parse(r.text) : undefined;
    });
    const workers = Object.keys(ready.checks).filter((k) => k.startsWith('worker '));
    assert.equal(workers.length, 2);
    assert.deepEqual(ready.checks.workers, { ok: true });
    const before = (await get(base, '/metrics')).text;
    assert.equal(sample(before, 'mwi_joins_total{method="token",result="success"}'), 0);
    for (const bot of ['w1', 'w2']) await joinAndRefusal(c, bot);
    const m = (await get(base, '/metrics')).text;
    assert.equal(sample(m, 'mwi_joins_total{method="token",result="success"}'), 2);
    assert.equal(sample(m, 'mwi_joins_total{method="token",result="failure"}'), 2);
    assert.equal(sample(m, 'mwi_refusals_total{reason="join_denied"}'), 2);
    assert.equal(sample(m, 'mwi_request_duration_seconds_count{route="POST /v1/join"}'), 4);
    // a fact of the shared storage is not doubled
    assert.equal(sample(m, 'mwi_bot_instances'), 2);
    // one family per name, however many workers answered
    assert.equal(m.match(/^# TYPE mwi_joins_total /gm)?.length, 1);
  });
});
