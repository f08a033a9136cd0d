import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { parse, parseAllDocuments, stringify } from 'yaml';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { startIssuer, type TestIssuer } from '../helpers/oidc-issuer.js';
import { cli, exited, run, spawnCli, waitFor, type CliProcess } from '../helpers/procs.js';
import { sshRun, startSshd, type Sshd } from '../helpers/sshd.js';
import { STOP_GRACE_MS } from '../../src/agent/kube/client.js';
import { hasUnsafeChars } from '../../src/util/text.js';
import { startKubeStandIn, type KubeStandIn, type SecretRule } from './kubernetes-secret-api.js';

// compiled to dist/test/integration: the repository is three levels up
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * A real tbot (one-shot and daemon) with `kubernetes_secret` storage and destination, joining a
 * real Auth Service with the `kubernetes` join method (static_jwks, as from another cluster), and
 * writing to the Kubernetes API stand-in (kubernetes-secret-api.ts lists what of the real API
 * server it reproduces). tbot runs as in a pod: KUBERNETES_SERVICE_HOST/PORT, the service account
 * directory (MWI_KUBERNETES_SERVICE_ACCOUNT_DIR stands for the mounted one), POD_NAMESPACE, and
 * the projected join token at KUBERNETES_TOKEN_PATH, which the test refreshes as the kubelet does.
 */
describe('tbot with kubernetes_secret storage and destination', () => {
  let c: TestCluster;
  let k8s: TestIssuer;
  let api: KubeStandIn;
  let sshd: Sshd;
  const me = userInfo().username;
  const NS = 'tbot';
  const SA = 'system:serviceaccount:tbot:tbot';
  const SECRETS = ['tbot', 'tbot-out', 'tbot-t', 'tbot-t-out', 'no-create'];
  let dir: string;
  let joinToken: string;
  let env: NodeJS.ProcessEnv;

  /** A fresh projected service account token (each one joins once: the Auth Service refuses replays). */
  const refreshJoinToken = async () =>
    writeFileSync(
      joinToken,
      await k8s.sign({
        jti: randomUUID(),
        aud: ['kube.example'],
        sub: `system:serviceaccount:${NS}:tbot`,
        'kubernetes.io': {
          namespace: NS,
          serviceaccount: { name: 'tbot', uid: 'sa-uid' },
          pod: { name: 'tbot-6d4cf56db6-x2x9v', uid: 'pod-uid' },
        },
      }),
    );

  /** tbot.yaml as deploy/kubernetes has it: Secret storage, an identity output to a Secret. */
  const tbotYaml = (name: string, opts: { storage?: string; output?: string; extra?: string } = {}) => {
    const path = join(dir, name);
    writeFileSync(
      path,
      [
        'version: v2',
        `auth_server: ${c.addr}`,
        'onboarding:',
        '  join_method: kubernetes',
        '  token: k8s-tbot',
        `  ca_pins: ["${c.caPin}"]`,
        'storage:',
        '  type: kubernetes_secret',
        `  name: ${opts.storage ?? 'tbot'}`,
        'outputs:',
        '  - type: identity',
        '    destination:',
        '      type: kubernetes_secret',
        `      name: ${opts.output ?? 'tbot-out'}`,
        opts.extra ?? '',
      ].join('\n'),
    );
    return path;
  };

  const joins = () => c.audit().filter((e) => e.event === 'bot.join' && e.success).length;
  const state = (secret: string) =>
    JSON.parse(api.secret(NS, secret)?.['state.json'] ?? '{}') as { identity?: { instance_id: string } };

  before(async () => {
    c = await startCluster('kube.example');
    dir = c.dir;
    await c.addBot('k8s', [me]);
    k8s = await startIssuer({ issuer: 'https://kubernetes.default.svc.cluster.local', alg: 'ES256' });
    writeFileSync(
      join(dir, 'k8s-token.yaml'),
      'kind: token\nversion: v2\nmetadata: { name: k8s-tbot }\nspec:\n  join_method: kubernetes\n  bot_name: k8s\n' +
        `  kubernetes:\n    type: static_jwks\n    static_jwks:\n      jwks: '${k8s.jwks()}'\n` +
        `    allow:\n      - { service_account: "${NS}:tbot" }\n`,
    );
    await c.tctlOk(['create', '-f', join(dir, 'k8s-token.yaml')]);
    api = await startKubeStandIn(join(dir, 'kube-api'));
    api.namespaces.add(NS);
    api.tokens.set('api-token', SA);
    // deploy/kubernetes/role.yaml's rule: tbot's own Secrets only (no-create: get and patch only)
    api.allow(SA, NS, [
      { verbs: ['get', 'patch', 'create'], resourceNames: SECRETS.filter((s) => s !== 'no-create') },
      { verbs: ['get', 'patch'], resourceNames: ['no-create'] },
    ]);
    const sa = join(dir, 'serviceaccount');
    mkdirSync(sa);
    writeFileSync(join(sa, 'token'), 'api-token\n');
    writeFileSync(join(sa, 'ca.crt'), readFileSync(api.caFile));
    writeFileSync(join(sa, 'namespace'), NS);
    joinToken = join(dir, 'join-sa-token');
    env = {
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: String(api.port),
      MWI_KUBERNETES_SERVICE_ACCOUNT_DIR: sa,
      POD_NAMESPACE: NS,
      KUBERNETES_TOKEN_PATH: joinToken,
      KUBECONFIG: '',
    };
    sshd = await startSshd(c, join(dir, 'sshd'));
  });
  after(async () => {
    await sshd?.stop();
    await api?.close();
    await k8s?.close();
    await c?.stop();
  });

  it('one-shot: joins, keeps its identity in one Secret and writes the output to another; its SSH cert logs in', async () => {
    await refreshJoinToken();
    const from = api.requests.length;
    const r = await cli('tbot', ['start', '-c', tbotYaml('tbot.yaml'), '--oneshot'], { env });
    assert.equal(r.code, 0, r.stderr);
    const out = api.secret(NS, 'tbot-out')!;
    // one key per file, Teleport's names; ssh_config and known_hosts name paths on disk: not in a Secret
    assert.deepEqual(Object.keys(out).sort(), [
      'identity',
      'key',
      'key-cert.pub',
      'key.pub',
      'sshcacerts',
      'tlscacerts',
      'tlscert',
    ]);
    assert.match(state('tbot').identity?.instance_id ?? '', /^[0-9a-f-]{36}$/);
    // the RBAC check ran first, on both Secrets: a dry-run apply each, before any real write
    const applies = api.requests.slice(from).filter((q) => q.method === 'PATCH');
    const firstReal = applies.findIndex((q) => !q.query.dryRun);
    assert.deepEqual(
      applies
        .slice(0, firstReal)
        .map((q) => q.path.split('/').pop())
        .sort(),
      ['tbot', 'tbot-out'],
    );
    for (const q of applies) {
      assert.equal(q.contentType, 'application/apply-patch+yaml');
      assert.equal(q.query.fieldManager, 'tbot');
      assert.equal(q.query.force, 'true');
    }
    // nothing of a Secret's data reaches the log
    assert.ok(!r.stderr.includes('PRIVATE KEY') && !r.stdout.includes('PRIVATE KEY'));
    assert.ok(!r.stderr.includes(Buffer.from(out.key!).toString('base64').slice(0, 40)));
    // the files a workload mounts from the Secret log in to a real sshd
    const login = join(dir, 'login');
    mkdirSync(login, { mode: 0o700 });
    writeFileSync(join(login, 'key'), out.key!, { mode: 0o600 });
    writeFileSync(join(login, 'key-cert.pub'), out['key-cert.pub']!);
    const hostCAs = out.identity!.split('\n').filter((l) => l.startsWith('@cert-authority'));
    assert.ok(hostCAs.length > 0, 'the identity file carries the host CA');
    writeFileSync(join(login, 'known_hosts'), `${hostCAs.join('\n')}\n`);
    writeFileSync(
      join(login, 'ssh_config'),
      `Host *\n  IdentityFile ${join(login, 'key')}\n  CertificateFile ${join(login, 'key-cert.pub')}\n` +
        `  UserKnownHostsFile ${join(login, 'known_hosts')}\n  IdentitiesOnly yes\n  StrictHostKeyChecking yes\n`,
    );
    const ssh = await sshRun(login, sshd.port, me, 'echo from-a-kubernetes-secret');
    assert.equal(ssh.code, 0, ssh.stderr);
    assert.equal(ssh.stdout.trim(), 'from-a-kubernetes-secret');
  });

  it('a Role without the verb tbot needs: exit 2 before the join, naming the verb, the Secret and the rule', async () => {
    await refreshJoinToken();
    const before = joins();
    const r = await cli('tbot', ['start', '-c', tbotYaml('forbidden.yaml', { output: 'no-create' }), '--oneshot'], {
      env,
    });
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /outputs\[0\]\.destination: the Kubernetes API refused to let system:serviceaccount:tbot:tbot create the Secret "no-create" in namespace "tbot" \(403 Forbidden\)/,
    );
    assert.match(
      r.stderr,
      /a Role in namespace "tbot" with the rule \{apiGroups: \[""\], resources: \["secrets"\], resourceNames: \["no-create"\], verbs: \["get", "patch", "create"\]\}/,
    );
    assert.equal(joins(), before, 'nothing was sent to the Auth Service');
    assert.equal(api.secret(NS, 'no-create'), undefined);
  });

  it('daemon: a deleted Secret is written again; a 409 is retried; storage too; a restart resumes from the Secret', async () => {
    await refreshJoinToken();
    // the kubelet's part: a fresh projected token while tbot runs (each renewal joins again)
    const kubelet = setInterval(() => void refreshJoinToken(), 200);
    let daemon: CliProcess | undefined;
    try {
      const yaml = tbotYaml('daemon.yaml', { extra: 'credential_ttl: 1m\nrenewal_interval: 30s\n' });
      const start = api.requests.length;
      daemon = spawnCli('tbot', ['start', '-c', yaml], env);
      const written = (secret: string) =>
        api.requests
          .slice(start)
          .filter((q) => q.method === 'PATCH' && !q.query.dryRun && q.path.endsWith(`/${secret}`)).length;
      await waitFor('the daemon to write its output', () => written('tbot-out') >= 1, 20_000);
      const instance = state('tbot').identity?.instance_id;
      assert.ok(instance);

      api.deleteSecret(NS, 'tbot-out');
      api.deleteSecret(NS, 'tbot');
      daemon.kill('SIGHUP');
      await waitFor('both Secrets to be back', () => api.secret(NS, 'tbot-out') && api.secret(NS, 'tbot'), 20_000);
      await waitFor('the warning', () =>
        /the Kubernetes Secret is gone \(deleted\?\); creating it again/.test(daemon!.out()),
      );
      assert.equal(state('tbot').identity?.instance_id, instance, 'the same bot instance, stored again');
      assert.deepEqual(Object.keys(api.secret(NS, 'tbot-out')!).length, 7);

      const from = api.requests.length;
      const key = api.secret(NS, 'tbot-out')!['tlscert'];
      api.conflictNext(NS, 'tbot-out', 1);
      daemon.kill('SIGHUP');
      await waitFor('a write after the conflict', () => api.secret(NS, 'tbot-out')!['tlscert'] !== key, 20_000);
      const outApplies = api.requests.slice(from).filter((q) => q.method === 'PATCH' && q.path.endsWith('/tbot-out'));
      assert.deepEqual(outApplies.map((q) => q.status).slice(0, 2), [409, 200]);
      daemon.kill('SIGTERM');
      assert.equal(await exited(daemon), 0, daemon.out());
      daemon = undefined;

      // a new pod: the identity comes back from the Secret, and the instance continues
      const r = await cli('tbot', ['start', '-c', yaml, '--oneshot'], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /resumed identity from storage/);
      assert.equal(state('tbot').identity?.instance_id, instance);
    } finally {
      clearInterval(kubelet);
      if (daemon && daemon.exitCode === null) {
        daemon.kill('SIGKILL');
        await exited(daemon);
      }
    }
  });

  it('SIGTERM stops tbot (one-shot or daemon) while the API server trickles its answer, joining nothing', async () => {
    await refreshJoinToken();
    const before = joins();
    api.trickleMs = 200;
    try {
      for (const mode of [['--oneshot'], []]) {
        const from = api.requests.length;
        const t = spawnCli('tbot', ['start', '-c', tbotYaml('stall.yaml'), ...mode], env);
        await waitFor('its first request to the API server', () => api.requests.length > from, 15_000);
        t.kill('SIGTERM');
        const stopped = Date.now();
        // before the fix: no end at all (every byte resets the socket's idle timeout)
        const code = await exited(t, STOP_GRACE_MS + 8_000);
        const took = Date.now() - stopped;
        assert.equal(code, 1, t.out());
        assert.ok(took < STOP_GRACE_MS + 4_000, `stopped after ${took} ms`);
        assert.match(t.out(), /received SIGTERM, stopping/);
        assert.match(
          t.out(),
          /ERROR: tbot: storage: stopped: the Kubernetes API had not answered 2 s after the stop signal \(get the Secret "tbot"/,
        );
      }
    } finally {
      api.trickleMs = undefined;
    }
    assert.equal(joins(), before, 'nothing was sent to the Auth Service');
  });

  it("a hostile API server's text reaches tbot's error line escaped, as one line, or one JSON object", async () => {
    const evil = 'bad\u001b[2J\u009b31m\u202e\u0007 ::error::pwned';
    /** Nothing a terminal acts on, on any line. */
    const clean = (out: string) => assert.ok(!out.split('\n').some(hasUnsafeChars), JSON.stringify(out));
    api.answer = () => [
      422,
      {
        kind: 'Status',
        status: 'Failure',
        reason: 'Invalid',
        message: `line one\n::error::injected ${evil}`,
        code: 422,
      },
    ];
    try {
      const text = await cli('tbot', ['start', '-c', tbotYaml('hostile.yaml'), '--oneshot'], { env });
      assert.equal(text.code, 2, text.stderr);
      clean(text.stderr);
      const lines = text.stderr.trimEnd().split('\n');
      assert.ok(!lines.some((l) => l.startsWith('::')), text.stderr);
      assert.equal(
        lines.at(-1),
        'ERROR: storage: the Kubernetes API refused the Secret "tbot" as invalid: line one ::error::injected ' +
          'bad\\u001b[2J\\u009b31m\\u202e\\u0007 ::error::pwned',
      );
      const json = await cli('tbot', ['start', '-c', tbotYaml('hostile.yaml'), '--oneshot', '--log-format', 'json'], {
        env,
      });
      assert.equal(json.code, 2, json.stderr);
      clean(json.stderr);
      const entries = json.stderr
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      const fatal = entries.at(-1)!;
      assert.equal(fatal.level, 'error');
      assert.equal(fatal.component, 'tbot');
      assert.equal(fatal.error_code, 'BAD_CONFIG');
      assert.equal(fatal.field, 'storage');
      // the escapes are JSON's own: the message reads back as the API server's text (on one line)
      assert.match(
        String(fatal.message),
        // eslint-disable-next-line no-control-regex -- the API server's control characters, read back
        /as invalid: line one ::error::injected bad\u001b\[2J\u009b31m\u202e\u0007 ::error/,
      );

      // a 403 names the user only when the name looks like one
      api.answer = () => [
        403,
        {
          kind: 'Status',
          reason: 'Forbidden',
          message: 'secrets "tbot" is forbidden: User "x\u001b]0;t\u0007\n::error::y" cannot get resource "secrets"',
          code: 403,
        },
      ];
      const forbidden = await cli('tbot', ['start', '-c', tbotYaml('hostile.yaml'), '--oneshot'], { env });
      assert.equal(forbidden.code, 2, forbidden.stderr);
      assert.match(forbidden.stderr, /^ERROR: storage: the Kubernetes API refused to let tbot get the Secret "tbot"/m);
      assert.ok(!forbidden.stderr.includes('::error::y'), forbidden.stderr);
    } finally {
      api.answer = undefined;
    }
  });

  it('a single-use token: the restart needs no token, the identity is in the Secret', async () => {
    const token = await c.tctlOk(['bots', 'add', 'k8s-t', '--roles', 'k8s-role', '--format', 'json']);
    const secret = (JSON.parse(token) as { token: string }).token;
    const file = (name: string, withToken: boolean) => {
      const path = join(dir, name);
      writeFileSync(
        path,
        [
          'version: v2',
          `auth_server: ${c.addr}`,
          'onboarding:',
          '  join_method: token',
          ...(withToken ? [`  token: ${secret}`] : []),
          `  ca_pins: ["${c.caPin}"]`,
          'storage: { type: kubernetes_secret, name: tbot-t }',
          'outputs:',
          '  - type: identity',
          '    destination: { type: kubernetes_secret, name: tbot-t-out, labels: { app.kubernetes.io/name: tbot } }',
          '',
        ].join('\n'),
      );
      return path;
    };
    const first = await cli('tbot', ['start', '-c', file('t1.yaml', true), '--oneshot'], { env });
    assert.equal(first.code, 0, first.stderr);
    const instance = state('tbot-t').identity?.instance_id;
    assert.ok(instance);
    assert.deepEqual((api.raw(NS, 'tbot-t-out') as { metadata: { labels: unknown } }).metadata.labels, {
      'app.kubernetes.io/name': 'tbot',
    });
    const again = await cli('tbot', ['start', '-c', file('t2.yaml', false), '--oneshot'], { env });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /resumed identity from storage/);
    assert.equal(state('tbot-t').identity?.instance_id, instance);
    // and without the Secret there is nothing to resume: the message names where tbot looked
    api.deleteSecret(NS, 'tbot-t');
    const none = await cli('tbot', ['start', '-c', file('t3.yaml', false), '--oneshot'], { env });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no identity in storage kubernetes-secret:\/\/\/tbot-t and no onboarding\.token/);
  });
  it("deploy/kubernetes as rendered: its RBAC lets tbot keep its storage in tbot's namespace and write the output to the workloads'", async () => {
    const r = await run('kubectl', ['kustomize', join(ROOT, 'deploy/kubernetes')]);
    assert.equal(r.code, 0, `kubectl kustomize (scripts/test.sh installs kubectl): ${r.stderr}`);
    type Obj = Record<string, any>;
    const objects = parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj);
    const tbotNs = objects.find((o) => o.kind === 'Deployment')!.metadata.namespace as string;
    // the stand-in's authorizer gets the manifests' Roles, as bound, in place of this file's
    const saved = new Map([...api.rbac].map(([user, byNs]) => [user, new Map(byNs)]));
    api.rbac.clear();
    for (const b of objects.filter((o) => o.kind === 'RoleBinding')) {
      const role = objects.find((o) => o.kind === 'Role' && o.metadata.name === b.roleRef.name)!;
      assert.equal(role.metadata.namespace, b.metadata.namespace);
      for (const sub of b.subjects)
        api.allow(
          `system:serviceaccount:${sub.namespace}:${sub.name}`,
          b.metadata.namespace,
          role.rules as SecretRule[],
        );
      api.namespaces.add(b.metadata.namespace as string);
    }
    const cfg = parse(objects.find((o) => o.kind === 'ConfigMap')!.data['tbot.yaml'] as string) as Obj;
    const outNs = cfg.outputs[0].destination.namespace as string;
    assert.ok(outNs && outNs !== tbotNs, 'the output Secret is in another namespace');
    Object.assign(cfg, { auth_server: c.addr });
    Object.assign(cfg.onboarding, { token: 'k8s-tbot', ca_pins: [c.caPin] });
    try {
      await refreshJoinToken();
      const from = api.requests.length;
      const file = join(dir, 'rendered.yaml');
      writeFileSync(file, stringify(cfg));
      const r2 = await cli('tbot', ['start', '-c', file, '--oneshot'], { env: { ...env, POD_NAMESPACE: tbotNs } });
      assert.equal(r2.code, 0, r2.stderr);
      assert.equal(Object.keys(api.secret(outNs, cfg.outputs[0].destination.name as string) ?? {}).length, 7);
      assert.match(state(cfg.storage.name as string).identity?.instance_id ?? '', /^[0-9a-f-]{36}$/);
      // this run's writes: the storage Secret in tbot's namespace, the output in the workloads'
      const writes = api.requests
        .slice(from)
        .filter((q) => q.method === 'PATCH' && !q.query.dryRun && q.status < 300)
        .map((q) => q.path.replace(/^\/api\/v1\/namespaces\//, ''));
      assert.deepEqual([...new Set(writes)].sort(), [`${outNs}/secrets/tbot-out`, `${tbotNs}/secrets/tbot`].sort());
    } finally {
      api.rbac.clear();
      for (const [user, byNs] of saved) api.rbac.set(user, byNs);
    }
  });
});
