import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Destination } from '../../src/agent/destinations/destination.js';
import { openDestination } from '../../src/agent/destinations/index.js';
import { KubernetesSecretDestination } from '../../src/agent/destinations/kubernetes-secret.js';
import { KubeRequestCut, STOP_GRACE_MS } from '../../src/agent/kube/client.js';
import { resolveConnection, SERVICE_ACCOUNT_DIR_ENV } from '../../src/agent/kube/connection.js';
import { readState } from '../../src/agent/state.js';
import { isMwiError } from '../../src/errors.js';
import type { Logger } from '../../src/util/log.js';
import { tempDir } from '../helpers/procs.js';
import { startKubeStandIn, type KubeStandIn } from './kubernetes-secret-api.js';

/**
 * The kubernetes_secret destination in this process against the Kubernetes API stand-in
 * (kubernetes-secret-api.ts says which behaviours of the real API server it reproduces).
 */
describe('kubernetes_secret destination against a Kubernetes API', () => {
  const tmp = tempDir('k8s-dest');
  let api: KubeStandIn;
  const NS = 'tbot';
  const SA = 'system:serviceaccount:tbot:tbot';
  const sa = join(tmp.path, 'sa');
  const warnings: string[] = [];
  const log: Logger = {
    debug: () => {},
    info: () => {},
    warn: (m) => warnings.push(m),
    error: () => {},
  };
  const ENV_KEYS = [
    'KUBERNETES_SERVICE_HOST',
    'KUBERNETES_SERVICE_PORT',
    SERVICE_ACCOUNT_DIR_ENV,
    'POD_NAMESPACE',
    'KUBECONFIG',
  ];
  const savedEnv = ENV_KEYS.map((k) => [k, process.env[k]] as const);

  before(async () => {
    api = await startKubeStandIn(tmp.path);
    api.namespaces.add(NS);
    mkdirSync(sa);
    writeFileSync(join(sa, 'token'), 'pod-token-1\n');
    writeFileSync(join(sa, 'ca.crt'), readFileSync(api.caFile));
    writeFileSync(join(sa, 'namespace'), NS);
    api.tokens.set('pod-token-1', SA);
    api.allow(SA, NS, [{ verbs: ['get', 'patch', 'create'], resourceNames: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 's'] }]);
    // a pod's environment, as the kubelet sets it (the destination reads process.env)
    for (const k of ENV_KEYS) delete process.env[k];
    Object.assign(process.env, {
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: String(api.port),
      [SERVICE_ACCOUNT_DIR_ENV]: sa,
      POD_NAMESPACE: NS,
    });
  });
  after(async () => {
    for (const [k, v] of savedEnv) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await api?.close();
    tmp.cleanup();
  });

  const open = (name: string, extra: Record<string, unknown> = {}): Destination =>
    openDestination({ type: 'kubernetes_secret', name, ...extra } as never, {
      field: 'outputs[0].destination.path',
      log,
    });
  const files = (set: Record<string, string>) =>
    Object.entries(set).map(([name, data]) => ({ name, data, mode: 0o600 }));

  it('conformance: writes a set and reads it back; a write replaces the whole set', async () => {
    const d = open('a');
    await d.writeAll(files({ a: 'one', b: 'two' }));
    assert.equal(await d.read('a'), 'one');
    assert.equal(await d.read('b'), 'two');
    assert.equal(await d.read('missing'), undefined);
    await d.writeAll(files({ a: 'three' }));
    assert.equal(await d.read('a'), 'three');
    assert.equal(await d.read('b'), undefined, 'a key of the previous set is gone');
    assert.deepEqual(api.secret(NS, 'a'), { a: 'three' });
  });

  it('each write is one server-side apply: PATCH, apply-patch+yaml, field manager tbot, force, the resourceVersion read', async () => {
    const d = open('b');
    const from = api.requests.length;
    await d.writeAll(files({ key: 'k', 'key-cert.pub': 'c' }));
    await d.writeAll(files({ key: 'k2', 'key-cert.pub': 'c2' }));
    const applies = api.requests.slice(from).filter((r) => r.method === 'PATCH');
    assert.equal(applies.length, 2, 'one apply per write, whatever the number of files');
    for (const r of applies) {
      assert.equal(r.contentType, 'application/apply-patch+yaml');
      assert.deepEqual(r.query, { fieldManager: 'tbot', force: 'true' });
      assert.equal(r.path, `/api/v1/namespaces/${NS}/secrets/b`);
      assert.equal(r.user, SA);
    }
    assert.deepEqual(
      applies.map((r) => r.status),
      [201, 200],
    );
    assert.equal((api.raw(NS, 'b') as { type: string }).type, 'Opaque');
  });

  it('prepare: a dry-run apply (nothing stored); a 403 names the verb, the Secret, the namespace and the Role rule', async () => {
    const from = api.requests.length;
    await open('c').prepare!();
    const seen = api.requests.slice(from);
    assert.deepEqual(
      seen.map((r) => [r.method, r.status, r.query.dryRun]),
      [
        ['GET', 404, undefined],
        ['PATCH', 201, 'All'],
      ],
    );
    assert.equal(api.secret(NS, 'c'), undefined, 'a dry run stores nothing');
    // a name outside the Role's resourceNames: the apply that would create it is refused
    api.allow(SA, NS, [
      { verbs: ['get', 'patch', 'create'], resourceNames: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 's'] },
      { verbs: ['get', 'patch'], resourceNames: ['nocreate'] },
    ]);
    await assert.rejects(open('nocreate').prepare!(), (e: unknown) => {
      assert.ok(isMwiError(e, 'BAD_CONFIG'));
      assert.equal(e.field, 'outputs[0].destination');
      assert.match(
        e.message,
        /the Kubernetes API refused to let system:serviceaccount:tbot:tbot create the Secret "nocreate" in namespace "tbot" \(403 Forbidden\)/,
      );
      assert.match(e.message, /resourceNames: \["nocreate"\], verbs: \["get", "patch", "create"\]/);
      return true;
    });
    await assert.rejects(open('unlisted').prepare!(), /let system:serviceaccount:tbot:tbot get the Secret "unlisted"/);
  });

  it('a deleted Secret is created again at the next write (with a warning); storage of a missing Secret holds no identity', async () => {
    const d = open('d');
    assert.deepEqual(await readState(d), { version: 2, methods: {} }, 'no Secret yet: no identity');
    await d.writeAll(files({ 'state.json': '{"version":2,"methods":{}}' }));
    api.deleteSecret(NS, 'd');
    assert.equal(await d.read('state.json'), undefined);
    warnings.length = 0;
    await d.writeAll(files({ 'state.json': '{"version":2,"methods":{"x":{}}}' }));
    assert.deepEqual(api.secret(NS, 'd'), { 'state.json': '{"version":2,"methods":{"x":{}}}' });
    assert.ok(warnings.some((w) => /the Kubernetes Secret is gone \(deleted\?\); creating it again/.test(w)));
  });

  it('409 (the Secret changed after tbot read it): read again and retried with backoff; forever: says why', async () => {
    const d = open('e');
    await d.writeAll(files({ x: '1' }));
    api.conflictNext(NS, 'e', 2);
    const from = api.requests.length;
    await d.writeAll(files({ x: '2' }));
    assert.deepEqual(
      api.requests
        .slice(from)
        .filter((r) => r.method === 'PATCH')
        .map((r) => r.status),
      [409, 409, 200],
    );
    assert.deepEqual(api.secret(NS, 'e'), { x: '2' });
    api.conflictNext(NS, 'e', 100);
    await assert.rejects(
      d.writeAll(files({ x: '3' })),
      /changed under every one of 5 writes \(409 Conflict\): is another tbot/,
    );
    api.conflictNext(NS, 'e', 0);
  });

  it("the pod's token is read for every request: a rotated token (the old one revoked) keeps working", async () => {
    const d = open('f');
    await d.writeAll(files({ x: '1' }));
    writeFileSync(join(sa, 'token'), 'pod-token-2\n');
    api.tokens.set('pod-token-2', SA);
    api.tokens.delete('pod-token-1');
    await d.writeAll(files({ x: '2' }));
    assert.deepEqual(api.secret(NS, 'f'), { x: '2' });
    api.tokens.delete('pod-token-2');
    await assert.rejects(d.writeAll(files({ x: '3' })), /did not accept tbot's credential \(401 Unauthorized/);
    api.tokens.set('pod-token-2', SA);
  });

  it('labels are applied (and dropped when tbot.yaml drops them); a missing namespace is named', async () => {
    await open('g', { labels: { 'app.kubernetes.io/name': 'tbot', team: 'infra' } }).writeAll(files({ x: '1' }));
    assert.deepEqual((api.raw(NS, 'g') as { metadata: { labels: unknown } }).metadata.labels, {
      'app.kubernetes.io/name': 'tbot',
      team: 'infra',
    });
    await open('g', { labels: { team: 'infra' } }).writeAll(files({ x: '1' }));
    assert.deepEqual((api.raw(NS, 'g') as { metadata: { labels: unknown } }).metadata.labels, { team: 'infra' });
    api.allow(SA, 'gone', [{ verbs: ['get', 'patch', 'create'] }]);
    await assert.rejects(open('s', { namespace: 'gone' }).prepare!(), /namespace "gone" does not exist in the cluster/);
  });

  it('from outside the cluster: a kubeconfig with a client certificate, or a token, and the context namespace', async () => {
    const user = 'mwi-operator';
    const { cert, key } = await api.clientCert(user);
    api.allow(user, 'ops', [{ verbs: ['get', 'patch', 'create'], resourceNames: ['from-outside'] }]);
    api.namespaces.add('ops');
    const kc = join(tmp.path, 'kubeconfig');
    writeFileSync(
      kc,
      [
        'apiVersion: v1',
        'kind: Config',
        'current-context: ops',
        'clusters:',
        `- name: standin`,
        `  cluster: { server: "${api.url}", certificate-authority: ${api.caFile} }`,
        'contexts:',
        '- name: ops',
        '  context: { cluster: standin, user: operator, namespace: ops }',
        '- name: by-token',
        '  context: { cluster: standin, user: robot, namespace: ops }',
        'users:',
        '- name: operator',
        `  user: { client-certificate: ${cert}, client-key: ${key} }`,
        '- name: robot',
        '  user: { token: robot-token }',
      ].join('\n'),
    );
    const saved = process.env.POD_NAMESPACE;
    delete process.env.POD_NAMESPACE;
    try {
      const d = open('from-outside', { kubeconfig_path: kc });
      assert.equal(d.description, 'Kubernetes Secret ops/from-outside');
      await d.prepare!();
      await d.writeAll(files({ x: 'by-cert' }));
      assert.deepEqual(api.secret('ops', 'from-outside'), { x: 'by-cert' });
      api.tokens.set('robot-token', 'robot');
      api.allow('robot', 'ops', [{ verbs: ['get', 'patch', 'create'], resourceNames: ['from-outside'] }]);
      await open('from-outside', { kubeconfig_path: kc, kubeconfig_context: 'by-token' }).writeAll(
        files({ x: 'by-token' }),
      );
      assert.equal(api.requests.at(-1)?.user, 'robot');
      assert.deepEqual(api.secret('ops', 'from-outside'), { x: 'by-token' });
    } finally {
      process.env.POD_NAMESPACE = saved;
    }
  });

  it('an answer that trickles in (a byte every 200 ms) is cut at the request deadline, naming it', async () => {
    const conn = resolveConnection({ field: 'storage' });
    const dest = new KubernetesSecretDestination({ type: 'kubernetes_secret', name: 'a' }, conn, NS, 'storage', log, {
      deadlineMs: 1500,
    });
    api.trickleMs = 200;
    const started = Date.now();
    try {
      await assert.rejects(dest.prepare(), (e: unknown) => {
        assert.ok(isMwiError(e, 'BAD_CONFIG'), String(e));
        assert.equal(e.field, 'storage');
        assert.match(
          e.message,
          /the Kubernetes API at https:\/\/127\.0\.0\.1:\d+ \(in-cluster .*\) gave no complete answer to get the Secret "a" in namespace "tbot" within 1\.5 s/,
        );
        return true;
      });
    } finally {
      api.trickleMs = undefined;
    }
    const took = Date.now() - started;
    assert.ok(took >= 1400 && took < 6000, `cut after ${took} ms`);
  });

  it("tbot's stop cuts a request in flight after a short grace; a healthy server's answer still lands", async () => {
    const stop = new AbortController();
    const dest = openDestination({ type: 'kubernetes_secret', name: 'b' } as never, {
      field: 'storage.path',
      log,
      signal: stop.signal,
    });
    api.trickleMs = 200;
    const started = Date.now();
    const pending = dest.prepare!();
    setTimeout(() => stop.abort(), 300);
    try {
      await assert.rejects(pending, (e: unknown) => {
        // not the configuration's fault: exit 1, not 2
        assert.ok(e instanceof KubeRequestCut && !isMwiError(e), String(e));
        assert.equal(e.why, 'stopped');
        assert.match(
          e.message,
          /^storage: stopped: the Kubernetes API had not answered 2 s after the stop signal \(get/,
        );
        return true;
      });
    } finally {
      api.trickleMs = undefined;
    }
    const took = Date.now() - started;
    assert.ok(took >= 300 + STOP_GRACE_MS - 100 && took < 300 + STOP_GRACE_MS + 3000, `cut after ${took} ms`);
    // after the stop, a server that answers at once is still heard (a storage write is not lost)
    await dest.writeAll(files({ 'state.json': '{}' }));
    assert.deepEqual(api.secret(NS, 'b'), { 'state.json': '{}' });
  });

  it("a server whose certificate the connection's CA does not verify is refused before anything is sent", async () => {
    const other = join(tmp.path, 'sa-other');
    mkdirSync(other);
    writeFileSync(join(other, 'token'), 'pod-token-2');
    // a CA that did not issue the stand-in's certificate
    writeFileSync(join(other, 'ca.crt'), readFileSync(join(tmp.path, 'client-ca.pem')));
    process.env[SERVICE_ACCOUNT_DIR_ENV] = other;
    try {
      await assert.rejects(open('a').prepare!(), (e: unknown) => {
        assert.ok(isMwiError(e, 'BAD_CONFIG'));
        assert.match(
          e.message,
          /cannot reach the Kubernetes API at https:\/\/127\.0\.0\.1:\d+ \(in-cluster .*\): .*certificate/,
        );
        return true;
      });
    } finally {
      process.env[SERVICE_ACCOUNT_DIR_ENV] = sa;
    }
  });
});
