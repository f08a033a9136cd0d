import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { buildTbotFile, validateTbotConfig } from '../../src/agent/config.js';
import { destinationFromUri } from '../../src/agent/destination-uri.js';
import { destinationTargets, openDestination } from '../../src/agent/destinations/index.js';
import {
  conflictError,
  forbiddenMessage,
  roleRule,
  secretError,
  type SecretRequest,
} from '../../src/agent/destinations/kubernetes-secret-errors.js';
import { KubernetesSecretDestination } from '../../src/agent/destinations/kubernetes-secret.js';
import { KubeApiError } from '../../src/agent/kube/client.js';
import { resolveConnection, SERVICE_ACCOUNT_DIR_ENV } from '../../src/agent/kube/connection.js';
import { keypairCreate } from '../../src/cli/tbot-keypair.js';
import { isMwiError } from '../../src/errors.js';
import { tempDir } from '../helpers/procs.js';

const tmp = tempDir('kube');
after(tmp.cleanup);

const PIN = `sha256:${'a'.repeat(64)}`;
const base = (extra: Record<string, unknown>) => ({
  version: 'v2',
  auth_server: 'auth.example.com:3025',
  onboarding: { join_method: 'kubernetes', token: 'k8s', ca_pins: [PIN] },
  ...extra,
});

/** validateTbotConfig must refuse `raw` with BAD_CONFIG naming `field`, the message matching. */
function refused(raw: unknown, field: string, message: RegExp): void {
  assert.throws(
    () => validateTbotConfig(raw, {}),
    (e: unknown) => isMwiError(e, 'BAD_CONFIG') && e.field === field && message.test(e.message),
  );
}

/** A function that must throw BAD_CONFIG naming `field`. */
function badConfig(fn: () => unknown, field: string, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isMwiError(e, 'BAD_CONFIG'), String(e));
    assert.equal(e.field, field);
    assert.match(e.message, message);
    return true;
  });
}

describe('kubernetes_secret in tbot.yaml and URIs', () => {
  it("Teleport's URI: kubernetes-secret://NAMESPACE/NAME, kubernetes-secret:///NAME (the pod's namespace)", () => {
    assert.deepEqual(destinationFromUri('kubernetes-secret://prod/tbot-out', '--destination'), {
      type: 'kubernetes_secret',
      name: 'tbot-out',
      namespace: 'prod',
    });
    assert.deepEqual(destinationFromUri('kubernetes-secret:///tbot', '--storage'), {
      type: 'kubernetes_secret',
      name: 'tbot',
    });
    for (const uri of ['kubernetes-secret://prod', 'kubernetes-secret://prod/', 'kubernetes-secret:///a/b']) {
      assert.throws(
        () => destinationFromUri(uri, '--storage'),
        (e: unknown) => isMwiError(e, 'BAD_CONFIG') && /expected kubernetes-secret:\/\/NAMESPACE\/NAME/.test(e.message),
        uri,
      );
    }
  });

  it('tbot keypair create keeps its key in a directory storage only, and says so for a Secret', async () => {
    await assert.rejects(
      keypairCreate({ storage: 'kubernetes-secret:///tbot' }),
      (e: unknown) =>
        isMwiError(e, 'BAD_CONFIG') &&
        e.field === '--storage' &&
        /directory storage only.*kubernetes method/.test(e.message),
    );
  });

  it('the flags build the same storage and output a tbot.yaml names, and the schema checks the names', () => {
    const file = buildTbotFile({
      'auth-server': 'a:1',
      token: 't',
      'ca-pin': [PIN],
      storage: 'kubernetes-secret:///tbot',
      destination: 'kubernetes-secret://prod/tbot-out',
    });
    const cfg = validateTbotConfig(file, {});
    assert.deepEqual(cfg.storage, { type: 'kubernetes_secret', name: 'tbot' });
    assert.deepEqual(cfg.outputs[0]?.destination, { type: 'kubernetes_secret', name: 'tbot-out', namespace: 'prod' });
    refused(
      base({ storage: { type: 'kubernetes_secret', name: 'Tbot_State' } }),
      'storage.name',
      /expected a Secret name/,
    );
    refused(
      base({ storage: { type: 'kubernetes_secret', name: 'tbot', namespace: 'a.b' } }),
      'storage.namespace',
      /expected a namespace name/,
    );
    refused(
      base({ storage: { type: 'kubernetes_secret', name: 'tbot', labels: { 'bad key!': 'x' } } }),
      'storage.labels.bad key!',
      /expected a label key/,
    );
    refused(
      base({ storage: { type: 'kubernetes_secret', name: 'tbot', labels: { team: 7 } } }),
      'storage.labels.team',
      /quote numbers/,
    );
    refused(base({ storage: { type: 'kubernetes_secret' } }), 'storage.name', /Required/);
    refused(base({ storage: { type: 'kubernetes_secret', name: 'tbot', path: '/x' } }), 'storage.path', /unknown key/);
    const ok = validateTbotConfig(
      base({
        storage: {
          type: 'kubernetes_secret',
          name: 'tbot',
          namespace: 'prod',
          labels: { 'app.kubernetes.io/name': 'tbot', empty: '' },
          kubeconfig_path: '/etc/kube.yaml',
          kubeconfig_context: 'prod',
        },
      }),
      {},
    );
    assert.equal(ok.storage.type, 'kubernetes_secret');
  });

  it('storage and an output (or two outputs) on one Secret are refused: each apply would drop the other keys', () => {
    const out = (name: string, namespace?: string) => ({
      type: 'identity',
      destination: { type: 'kubernetes_secret', name, ...(namespace ? { namespace } : {}) },
    });
    refused(
      base({ storage: { type: 'kubernetes_secret', name: 'tbot' }, outputs: [out('tbot')] }),
      'outputs',
      /share the Kubernetes Secret \$POD_NAMESPACE\/tbot$/,
    );
    refused(base({ outputs: [out('x', 'a'), out('x', 'a')] }), 'outputs', /share the Kubernetes Secret a\/x$/);
    // other namespaces, or the same name through another kubeconfig, are other Secrets
    validateTbotConfig(base({ outputs: [out('x', 'a'), out('x', 'b')] }), {});
    assert.deepEqual(destinationTargets({ type: 'directory', path: '/x', symlinks: 'try-secure' } as never), [
      'the directory /x',
    ]);
  });
});

describe('the Kubernetes connection', () => {
  const sa = join(tmp.path, 'sa');
  mkdirSync(sa);
  writeFileSync(join(sa, 'token'), 'first-token\n');
  writeFileSync(join(sa, 'ca.crt'), 'CA PEM');
  writeFileSync(join(sa, 'namespace'), 'tbot-ns');
  const pod = { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '6443', [SERVICE_ACCOUNT_DIR_ENV]: sa };

  it("in a pod: the service host and port, the account's CA and namespace; the token is read for every request", () => {
    const c = resolveConnection({ field: 'storage' }, pod);
    assert.equal(c.server, 'https://10.0.0.1:6443');
    assert.equal(c.ca, 'CA PEM');
    assert.equal(c.namespace, 'tbot-ns');
    assert.equal(c.token?.(), 'first-token');
    writeFileSync(join(sa, 'token'), 'rotated-token\n');
    assert.equal(c.token?.(), 'rotated-token');
    assert.equal(
      resolveConnection({ field: 's' }, { ...pod, KUBERNETES_SERVICE_HOST: 'fd00::1' }).server,
      'https://[fd00::1]:6443',
    );
  });

  it('nothing to connect to, a missing token, or a context without a kubeconfig: errors naming the field', () => {
    badConfig(
      () => resolveConnection({ field: 'storage' }, {}),
      'storage',
      /tbot is not in a pod .*\$KUBECONFIG names a kubeconfig/,
    );
    badConfig(
      () => resolveConnection({ field: 'storage' }, { ...pod, [SERVICE_ACCOUNT_DIR_ENV]: join(tmp.path, 'none') }),
      'storage',
      /cannot read the service account token .*no such file or directory/,
    );
    badConfig(
      () => resolveConnection({ field: 'outputs[0].destination', kubeconfigContext: 'x' }, pod),
      'outputs[0].destination.kubeconfig_context',
      /needs a kubeconfig/,
    );
  });

  const kubeconfig = (name: string, text: string) => {
    const p = join(tmp.path, name);
    writeFileSync(p, text);
    return p;
  };
  const b64 = (s: string) => Buffer.from(s).toString('base64');

  it('a kubeconfig: kubeconfig_path beats $KUBECONFIG beats the pod; current-context or kubeconfig_context', () => {
    mkdirSync(join(tmp.path, 'kc'));
    writeFileSync(join(tmp.path, 'kc', 'ca.pem'), 'FILE CA');
    writeFileSync(join(tmp.path, 'kc', 'token'), 'file-token\n');
    const path = kubeconfig(
      'kc/config',
      [
        'apiVersion: v1',
        'kind: Config',
        'current-context: a',
        'clusters:',
        '- name: one',
        '  cluster: { server: "https://one.example:6443/", certificate-authority: ca.pem }',
        '- name: two',
        `  cluster: { server: "https://two.example", certificate-authority-data: ${b64('DATA CA')}, tls-server-name: k8s }`,
        'contexts:',
        '- name: a',
        '  context: { cluster: one, user: tok, namespace: apps }',
        '- name: b',
        '  context: { cluster: two, user: cert }',
        'users:',
        '- name: tok',
        '  user: { tokenFile: token }',
        '- name: cert',
        `  user: { client-certificate-data: ${b64('CERT')}, client-key-data: ${b64('KEY')} }`,
      ].join('\n'),
    );
    const a = resolveConnection({ field: 'storage', kubeconfigPath: path }, pod);
    assert.equal(a.server, 'https://one.example:6443');
    assert.equal(a.ca, 'FILE CA');
    assert.equal(a.token?.(), 'file-token');
    assert.equal(a.namespace, 'apps');
    assert.match(a.source, /context a/);
    const b = resolveConnection({ field: 'storage', kubeconfigContext: 'b' }, { ...pod, KUBECONFIG: path });
    assert.equal(b.server, 'https://two.example');
    assert.equal(b.ca, 'DATA CA');
    assert.equal(b.servername, 'k8s');
    assert.equal(b.cert, 'CERT');
    assert.equal(b.key, 'KEY');
    assert.equal(b.token, undefined);
    badConfig(
      () => resolveConnection({ field: 'storage', kubeconfigPath: path, kubeconfigContext: 'c' }, {}),
      'storage.kubeconfig_context',
      /has no context "c" \(it has: a, b\)/,
    );
  });

  it('several $KUBECONFIG files merge as kubectl merges them: the first to name something wins', () => {
    const first = kubeconfig('m1', 'current-context: x\nusers:\n- name: u\n  user: { token: from-first }\n');
    const second = kubeconfig(
      'm2',
      'current-context: y\nclusters:\n- name: c\n  cluster: { server: "https://c" }\ncontexts:\n' +
        '- name: x\n  context: { cluster: c, user: u }\nusers:\n- name: u\n  user: { token: from-second }\n',
    );
    const c = resolveConnection({ field: 'storage' }, { KUBECONFIG: `${first}:${second}` });
    assert.equal(c.token?.(), 'from-first');
    assert.equal(c.ca, undefined, 'no CA: the system trust store');
  });

  it('refused with the reason: exec plugins, insecure-skip-tls-verify, plain http, no credential', () => {
    const cfg = (cluster: string, user: string) =>
      kubeconfig(
        `r-${Math.random()}`,
        `current-context: x\nclusters:\n- name: c\n  cluster: ${cluster}\ncontexts:\n- name: x\n` +
          `  context: { cluster: c, user: u }\nusers:\n- name: u\n  user: ${user}\n`,
      );
    const ok = '{ server: "https://c" }';
    const f = (path: string) => () => resolveConnection({ field: 'storage', kubeconfigPath: path }, {});
    badConfig(
      f(cfg(ok, '{ exec: { command: aws, apiVersion: client.authentication.k8s.io/v1 } }')),
      'storage.kubeconfig_path',
      /sets exec: tbot does not run kubeconfig exec plugins .* kubectl create token/,
    );
    badConfig(
      f(cfg('{ server: "https://c", insecure-skip-tls-verify: true }', '{ token: t }')),
      'storage.kubeconfig_path',
      /insecure-skip-tls-verify: .*verifies it/,
    );
    badConfig(f(cfg('{ server: "http://c" }', '{ token: t }')), 'storage.kubeconfig_path', /is not https/);
    badConfig(f(cfg(ok, '{}')), 'storage.kubeconfig_path', /no credential tbot can use/);
    badConfig(f(cfg(ok, `{ client-certificate-data: ${b64('C')} }`)), 'storage.kubeconfig_path', /without the other/);
    badConfig(f(join(tmp.path, 'missing')), 'storage.kubeconfig_path', /cannot read the kubeconfig .*ENOENT/);
  });

  it('the namespace: the key, else $POD_NAMESPACE, else the context or the pod; none is an error', () => {
    const keys = [
      'POD_NAMESPACE',
      'KUBERNETES_SERVICE_HOST',
      'KUBERNETES_SERVICE_PORT',
      'KUBECONFIG',
      SERVICE_ACCOUNT_DIR_ENV,
    ];
    const open = (cfg: Record<string, unknown>, env: NodeJS.ProcessEnv) => {
      const saved = keys.map((k) => [k, process.env[k]] as const);
      try {
        for (const k of keys) delete process.env[k];
        Object.assign(process.env, env);
        return openDestination({ type: 'kubernetes_secret', name: 'tbot', ...cfg } as never, { field: 'storage.path' });
      } finally {
        for (const [k, v] of saved) {
          if (v === undefined) delete process.env[k];
          else process.env[k] = v;
        }
      }
    };
    const ns = (d: unknown) => (d as KubernetesSecretDestination).namespace;
    assert.equal(ns(open({ namespace: 'given' }, { ...pod, POD_NAMESPACE: 'env' })), 'given');
    assert.equal(ns(open({}, { ...pod, POD_NAMESPACE: 'env' })), 'env');
    assert.equal(ns(open({}, pod)), 'tbot-ns');
    writeFileSync(join(sa, 'namespace'), '');
    badConfig(
      () => open({}, pod),
      'storage.namespace',
      /no namespace for the Secret "tbot": set namespace, or \$POD_NAMESPACE/,
    );
    writeFileSync(join(sa, 'namespace'), 'tbot-ns');
    assert.equal(open({}, pod).description, 'Kubernetes Secret tbot-ns/tbot');
  });
});

describe('Kubernetes API failures, as tbot reports them', () => {
  const req: SecretRequest = {
    verb: 'patch',
    name: 'tbot-out',
    namespace: 'prod',
    server: 'https://10.0.0.1:443',
    source: 'in-cluster',
    field: 'outputs[0].destination',
  };
  const api = (status: number, body: Record<string, unknown>) => new KubeApiError(status, body, 'PATCH', '/api/v1');

  it('403: who may not do what to which Secret, and the Role rule that grants it', () => {
    const m = forbiddenMessage(
      { ...req, verb: 'patch' },
      'secrets "tbot-out" is forbidden: User "system:serviceaccount:prod:tbot" cannot create resource "secrets" in ' +
        'API group "" in the namespace "prod"',
    );
    assert.match(
      m,
      /^the Kubernetes API refused to let system:serviceaccount:prod:tbot create the Secret "tbot-out" in/,
    );
    assert.match(m, /namespace "prod" \(403 Forbidden\)/);
    assert.ok(m.includes(roleRule('tbot-out')));
    assert.equal(
      roleRule('x'),
      '{apiGroups: [""], resources: ["secrets"], resourceNames: ["x"], verbs: ["get", "patch", "create"]}',
    );
    assert.match(m, /Teleport's tbot chart grants every verb on every Secret/);
    // without the API's wording, the verb the request needed
    assert.match(forbiddenMessage({ ...req, verb: 'get' }, undefined), /let tbot get the Secret/);
    const e = secretError(api(403, { reason: 'Forbidden', message: 'x' }), req);
    assert.ok(isMwiError(e, 'BAD_CONFIG'));
    assert.equal(e.field, 'outputs[0].destination');
  });

  it("the API server's text: a user or verb that does not look like one is not repeated; messages are one line", () => {
    for (const user of ['x\u001b]0;t\u0007', 'a\n::error::b', 'a b', '"', '']) {
      const m = forbiddenMessage(req, `secrets "tbot-out" is forbidden: User "${user}" cannot get resource "secrets"`);
      assert.match(m, /^the Kubernetes API refused to let tbot get the Secret "tbot-out"/, JSON.stringify(user));
    }
    for (const user of ['system:serviceaccount:prod:tbot', 'alice@example.com', 'oidc:https://issuer/sub=1']) {
      const m = forbiddenMessage(req, `User "${user}" cannot get resource "secrets"`);
      assert.ok(m.startsWith(`the Kubernetes API refused to let ${user} get the Secret`), m);
    }
    assert.match(forbiddenMessage(req, 'User "u" cannot \u001b[2J resource'), /let u patch the Secret/);
    // a Status whose fields are not strings, a long message, a reason that is not one
    const odd = secretError(api(500, { message: { a: 1 }, reason: 'Bad\nReason' }), req);
    assert.match(odd.message, /with HTTP 500: \(no message\)$/);
    const long = secretError(api(500, { message: `a\n${'x'.repeat(1000)}` }), req).message;
    assert.match(long, /HTTP 500: a x{298}\.\.\.$/);
  });

  it('401, a missing namespace, 415, 422, other statuses, and no connection at all', () => {
    assert.match(secretError(api(401, { reason: 'Unauthorized' }), req).message, /did not accept tbot's credential/);
    assert.match(
      secretError(api(404, { details: { kind: 'namespaces', name: 'prod' } }), req).message,
      /namespace "prod" does not exist/,
    );
    assert.match(secretError(api(415, {}), req).message, /server-side apply .* since 1\.22/);
    assert.match(
      secretError(api(422, { message: 'type: field is immutable' }), req).message,
      /invalid: type: field is immutable/,
    );
    assert.match(
      secretError(api(500, { reason: 'InternalError', message: 'etcd' }), req).message,
      /answered patch on the Secret "tbot-out" in namespace "prod" with HTTP 500 InternalError: etcd/,
    );
    const down = Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:443'), { code: 'ECONNREFUSED' });
    assert.match(
      secretError(down, req).message,
      /cannot reach the Kubernetes API at https:\/\/10\.0\.0\.1:443 \(in-cluster\): connect ECONNREFUSED/,
    );
    assert.match(
      conflictError(req, 5).message,
      /changed under every one of 5 writes \(409 Conflict\): is another tbot/,
    );
  });
});
