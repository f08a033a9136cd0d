import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments, parse } from 'yaml';
import { validateTbotConfig } from '../../src/agent/config.js';
import { cli, run, tempDir } from '../helpers/procs.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const BASE = join(ROOT, 'deploy/kubernetes');

type Obj = Record<string, any>;

/**
 * deploy/kubernetes rendered with `kubectl kustomize` (Debian's kubernetes-client where kubectl is
 * missing: scripts/test.sh installs it), and what comes out checked against what tbot needs.
 */
describe('deploy/kubernetes (kustomize)', () => {
  const tmp = tempDir('kustomize');
  let objects: Obj[];
  const one = (kind: string): Obj => {
    const found = objects.filter((o) => o.kind === kind);
    assert.equal(found.length, 1, `one ${kind}`);
    return found[0]!;
  };
  let tbotYaml: string;

  before(async () => {
    const r = await run('kubectl', ['kustomize', BASE]);
    assert.equal(
      r.code,
      0,
      `kubectl kustomize failed (is kubectl installed? scripts/test.sh installs it): ${r.stderr}`,
    );
    objects = parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj);
    tbotYaml = one('ConfigMap').data['tbot.yaml'];
  });
  after(tmp.cleanup);

  /** Each kubernetes_secret of tbot.yaml: its name and namespace (none: $POD_NAMESPACE, the pod's). */
  const secrets = () => {
    const cfg = parse(tbotYaml) as Obj;
    const podNamespace = one('Deployment').metadata.namespace as string;
    return [cfg.storage, ...cfg.outputs.map((o: Obj) => o.destination)]
      .filter((d: Obj) => d.type === 'kubernetes_secret')
      .map((d: Obj) => ({ name: d.name as string, namespace: (d.namespace as string | undefined) ?? podNamespace }));
  };

  it("renders the objects of Teleport's tbot chart, and a Role and RoleBinding where the output goes", () => {
    assert.deepEqual(objects.map((o) => o.kind).sort(), [
      'ConfigMap',
      'Deployment',
      'Role',
      'Role',
      'RoleBinding',
      'RoleBinding',
      'ServiceAccount',
    ]);
    for (const o of objects) assert.ok(o.metadata.namespace, `${o.kind} ${o.metadata.name} has a namespace`);
  });

  it("the storage Secret stays in tbot's namespace, where only tbot runs; the output goes to the workloads'", () => {
    // any pod of a namespace may mount any Secret there without RBAC: whoever may run a pod next to
    // the storage Secret may take tbot's renewable identity
    const tbotNs = one('Deployment').metadata.namespace as string;
    const cfg = parse(tbotYaml) as Obj;
    assert.equal(cfg.storage.namespace, undefined, "storage: the pod's own namespace ($POD_NAMESPACE)");
    const [storage, ...outputs] = secrets();
    assert.equal(storage!.namespace, tbotNs);
    assert.ok(outputs.length > 0);
    for (const o of outputs) assert.notEqual(o.namespace, tbotNs, `the output Secret ${o.name}`);
    const inTbotNs = objects.filter((o) => o.metadata.namespace === tbotNs).map((o) => o.kind);
    assert.deepEqual(inTbotNs.sort(), ['ConfigMap', 'Deployment', 'Role', 'RoleBinding', 'ServiceAccount']);
  });

  it('RBAC: in each namespace, the service account may get, patch and create the Secrets tbot.yaml puts there, and nothing else', () => {
    const sa = one('ServiceAccount');
    const roles = objects.filter((o) => o.kind === 'Role');
    const bindings = objects.filter((o) => o.kind === 'RoleBinding');
    const namespaces = new Set(secrets().map((x) => x.namespace));
    assert.deepEqual(new Set(roles.map((r) => r.metadata.namespace)), namespaces);
    for (const ns of namespaces) {
      const [role, ...moreRoles] = roles.filter((r) => r.metadata.namespace === ns);
      assert.ok(role && moreRoles.length === 0, `one Role in ${ns}`);
      assert.equal(role.rules.length, 1);
      const [rule] = role.rules;
      assert.deepEqual(rule.apiGroups, ['']);
      assert.deepEqual(rule.resources, ['secrets']);
      assert.deepEqual([...rule.verbs].sort(), ['create', 'get', 'patch']);
      // exactly the Secrets of tbot.yaml in this namespace
      const named = secrets()
        .filter((x) => x.namespace === ns)
        .map((x) => x.name);
      assert.deepEqual([...rule.resourceNames].sort(), named.sort());
      const binding = bindings.filter((b) => b.metadata.namespace === ns);
      assert.equal(binding.length, 1, `one RoleBinding in ${ns}`);
      assert.deepEqual(binding[0]!.roleRef, {
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'Role',
        name: role.metadata.name,
      });
      assert.deepEqual(binding[0]!.subjects, [
        { kind: 'ServiceAccount', name: sa.metadata.name, namespace: sa.metadata.namespace },
      ]);
    }
  });

  it('the Deployment: one replica, Recreate, the args, POD_NAMESPACE, the probes on 3001, locked down', () => {
    const d = one('Deployment');
    assert.equal(d.spec.replicas, 1);
    assert.deepEqual(d.spec.strategy, { type: 'Recreate' });
    const pod = d.spec.template.spec;
    assert.equal(pod.serviceAccountName, one('ServiceAccount').metadata.name);
    assert.equal(pod.containers.length, 1);
    const c = pod.containers[0];
    assert.deepEqual(c.args, [
      'start',
      '-c',
      '/config/tbot.yaml',
      '--log-format',
      'json',
      '--diag-addr',
      '0.0.0.0:3001',
    ]);
    const env = Object.fromEntries(c.env.map((e: Obj) => [e.name, e]));
    assert.deepEqual(env.POD_NAMESPACE.valueFrom, { fieldRef: { fieldPath: 'metadata.namespace' } });
    const port = c.ports.find((p: Obj) => p.name === 'diagnostics');
    assert.equal(port.containerPort, 3001);
    assert.deepEqual(c.livenessProbe.httpGet, { path: '/livez', port: 'diagnostics' });
    assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'diagnostics' });
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.ok(pod.securityContext.runAsUser > 0);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.deepEqual(c.securityContext.capabilities.drop, ['ALL']);
    assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);
    // the image is the version this checkout builds
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    assert.equal(c.image, `mwi/tbot-distroless:${version}`);
    // /config/tbot.yaml is the ConfigMap's tbot.yaml
    const mount = c.volumeMounts.find((m: Obj) => m.mountPath === '/config');
    const volume = pod.volumes.find((v: Obj) => v.name === mount.name);
    assert.equal(volume.configMap.name, one('ConfigMap').metadata.name);
  });

  it('the join token: projected, audience the cluster name, 600 s, where KUBERNETES_TOKEN_PATH points', () => {
    const pod = one('Deployment').spec.template.spec;
    const c = pod.containers[0];
    const tokenPath = c.env.find((e: Obj) => e.name === 'KUBERNETES_TOKEN_PATH').value as string;
    const mount = c.volumeMounts.find((m: Obj) => tokenPath.startsWith(`${m.mountPath}/`));
    const volume = pod.volumes.find((v: Obj) => v.name === mount.name);
    const [source] = volume.projected.sources;
    assert.equal(source.serviceAccountToken.path, tokenPath.slice(mount.mountPath.length + 1));
    assert.equal(source.serviceAccountToken.expirationSeconds, 600);
    // the placeholder is the cluster name the docs use: the Auth Service asks for that audience
    assert.equal(source.serviceAccountToken.audience, 'example.com');
  });

  it("the ConfigMap's tbot.yaml is one tbot accepts once its pin is filled in: Secret storage and output, the kubernetes join", async () => {
    // as shipped, its all-zero pin is refused as the placeholder it is
    assert.throws(
      () => validateTbotConfig(parse(tbotYaml), {}),
      /onboarding\.ca_pins\[0\]: the all-zero pin is a placeholder/,
    );
    tbotYaml = tbotYaml.replace(`sha256:${'0'.repeat(64)}`, `sha256:${'ab'.repeat(32)}`);
    const cfg = validateTbotConfig(parse(tbotYaml), {});
    assert.equal(cfg.joinMethod, 'kubernetes');
    assert.deepEqual(cfg.storage, { type: 'kubernetes_secret', name: 'tbot' });
    assert.deepEqual(cfg.outputs[0]?.destination, { type: 'kubernetes_secret', name: 'tbot-out', namespace: 'apps' });
    const file = join(tmp.path, 'tbot.yaml');
    writeFileSync(file, tbotYaml);
    const r = await cli('tbot', ['configure', '-c', file]);
    assert.equal(r.code, 0, r.stderr);
  });
});
