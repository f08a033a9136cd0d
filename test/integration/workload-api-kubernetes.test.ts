import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestCluster } from '../helpers/cluster.js';
import { pod, startFakeKubelet, type FakeKubelet } from '../helpers/kubelet.js';
import { type CliProcess } from '../helpers/procs.js';
import {
  ROOT_ONLY,
  lines,
  startTbot,
  stopTbot,
  workload,
  workloadApiTbot,
  workloadInCgroup,
  workloadScene,
} from '../helpers/workload-api.js';
import { createIdentity } from '../helpers/workload-identity.js';

const CLUSTER = 'wlapi-k8s.example';
/** A cgroup v1 hierarchy this machine mounts writable (the tests run as root). */
const HIERARCHY = '/sys/fs/cgroup/pids';

/**
 * Kubernetes attestation end to end: a workload process placed in a cgroup named like a pod's
 * container (kubepods/.../pod<UID>/<container id>), tbot reading its /proc/PID/cgroup and asking a
 * kubelet stand-in (HTTPS, bearer token) for the pod, the Auth Service templating the SPIFFE ID
 * from the pod's namespace and service account and its rule deciding on the namespace.
 */
describe('workload api: kubernetes attestation (kubelet stand-in, a workload in a container cgroup)', ROOT_ONLY, () => {
  let c: TestCluster;
  let tmp: { path: string; cleanup: () => void };
  let kubelet: FakeKubelet;
  let tbot: CliProcess | undefined;
  let client: string;
  let socket: string;
  const containerId = randomBytes(32).toString('hex');
  const podUid = randomUUID();
  const top = join(HIERARCHY, `mwi-test-${process.pid}`);
  const cgroup = join(top, 'kubepods', 'burstable', `pod${podUid}`, containerId);

  before(async () => {
    ({ tmp, client, c } = await workloadScene('wlapi-k8s', CLUSTER));
    mkdirSync(join(tmp.path, 'kubelet'));
    kubelet = await startFakeKubelet(join(tmp.path, 'kubelet'), [
      pod({
        name: 'web-7d9f',
        namespace: 'shop',
        uid: podUid,
        serviceAccount: 'web',
        containerId,
        labels: { app: 'web' },
      }),
    ]);
    await createIdentity(
      c,
      'k8s',
      'kind: workload_identity\nversion: v1\nmetadata: { name: k8s, labels: { team: k8s } }\nspec:\n' +
        '  spiffe:\n    id: /k8s/{{ workload.kubernetes.namespace }}/{{ workload.kubernetes.service_account }}\n' +
        '  rules:\n    allow:\n      - conditions:\n          - attribute: workload.kubernetes.namespace\n' +
        '            eq: { value: shop }\n',
    );
    socket = join(tmp.path, 'w.sock');
    const file = await workloadApiTbot(
      c,
      { bot: 'k8sbot', team: 'k8s', dir: join(tmp.path, 'tbot'), socket, name: 'k8s' },
      '    attestors:\n      kubernetes:\n        enabled: true\n        kubelet:\n' +
        `          secure_port: ${kubelet.port}\n          token_path: ${kubelet.tokenPath}\n` +
        `          ca_path: ${kubelet.caPath}\n`,
    );
    // the kubelet's host, as the downward API would set it
    tbot = await startTbot(file, undefined, { TELEPORT_NODE_NAME: '127.0.0.1' });
  });
  after(async () => {
    await stopTbot(tbot);
    await c?.stop();
    await kubelet?.close();
    // (empty once its processes have exited)
    for (let d = cgroup; d.startsWith(top); d = join(d, '..')) if (existsSync(d)) rmdirSync(d);
    tmp?.cleanup();
  });

  it("a process in the pod's container gets the SPIFFE ID of its namespace and service account", async (t) => {
    try {
      mkdirSync(cgroup, { recursive: true });
    } catch (err) {
      return t.skip(`cannot make a cgroup under ${HIERARCHY} (${String(err)}): needs root and cgroup v1 pids`);
    }
    const r = await workloadInCgroup(client, socket, ['x509', join(tmp.path, 'out')], cgroup);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}\n${tbot?.out()}`);
    assert.deepEqual(lines(r)[0]!.spiffe_ids, [`spiffe://${CLUSTER}/k8s/shop/web`]);
    assert.ok(kubelet.requests.some((q) => q.path === '/pods' && q.authorization === 'Bearer kubelet-test-token'));
    // the Auth Service audited what tbot attested
    const issued = c.audit().filter((e) => e.event === 'workload_identity.x509' && e.success !== false);
    assert.match(JSON.stringify(issued.at(-1)), /shop/);
  });

  it('a process in no container passes no rule on workload.kubernetes.*: PermissionDenied', async () => {
    const r = await workload(client, socket, ['x509', join(tmp.path, 'out2')]);
    assert.equal(lines(r)[0]!.error, 'PERMISSION_DENIED', r.stdout + r.stderr);
  });
});
