import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  lchownSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import protobuf from 'protobufjs';
import { validateTbotConfig } from '../../src/agent/config.js';
import { startMode } from '../../src/cli/tbot-modes.js';
import { attestKubernetes, containerOf, KubeletClient } from '../../src/agent/workload-api/attest/kubernetes.js';
import { attestUnix, fileKey } from '../../src/agent/workload-api/attest/unix.js';
import { cacheKey, SvidCache } from '../../src/agent/workload-api/cache.js';
import { peerCredentials } from '../../src/agent/workload-api/peercred.js';
import { WORKLOAD_API_DESCRIPTOR } from '../../src/agent/workload-api/proto.js';
import type { WorkloadApiConfig } from '../../src/agent/workload-api/service.js';
import { listenUnix } from '../../src/agent/workload-api/socket.js';
import { pod, startFakeKubelet, type FakeKubelet } from '../helpers/kubelet.js';
import { REPO_ROOT, tempDir } from '../helpers/procs.js';

const CID = 'a'.repeat(40) + '0123456789abcdef01234567';
const POD_UID = '1b4e28ba-2fa1-11d2-883f-0016d3cca427';

describe('workload api: the embedded proto', () => {
  it('is the proto of test/fixtures/workloadapi.proto (the one the Python client compiles)', () => {
    const text = readFileSync(join(REPO_ROOT, 'test/fixtures/workloadapi.proto'), 'utf8');
    const parsed = protobuf.parse(text, { keepCase: true }).root;
    const embedded = protobuf.Root.fromJSON(WORKLOAD_API_DESCRIPTOR as protobuf.INamespace);
    const shape = (root: protobuf.Root) => {
      const out: Record<string, unknown> = {};
      for (const [name, obj] of Object.entries(root.nested ?? {})) {
        if (name === 'google') continue;
        const j = obj.toJSON() as Record<string, unknown>;
        out[name] = JSON.parse(JSON.stringify(j, (k, v: unknown) => (k === 'comment' ? undefined : v)));
      }
      return out;
    };
    assert.deepEqual(shape(embedded), shape(parsed));
  });
});

describe('workload api: SVID cache', () => {
  it('reuses an SVID until half its life, shares one issuance between concurrent requests, is bounded', async () => {
    let now = 1_000_000;
    const cache = new SvidCache<{ n: number; exp: number }>(2, () => now);
    let issued = 0;
    const issue = async () => ({ n: ++issued, exp: now + 60_000 });
    const [a, b] = await Promise.all([cache.get('k1', issue, (v) => v.exp), cache.get('k1', issue, (v) => v.exp)]);
    assert.equal(issued, 1, 'two concurrent requests, one issuance');
    assert.equal(a, b);
    now += 29_000;
    assert.equal((await cache.get('k1', issue, (v) => v.exp)).n, 1, 'still fresh before half its life');
    now += 2_000;
    assert.equal((await cache.get('k1', issue, (v) => v.exp)).n, 2, 'past half its life: issued again');
    await cache.get('k2', issue, (v) => v.exp);
    await cache.get('k3', issue, (v) => v.exp);
    assert.equal(cache.size, 2, 'bounded');
    const before = issued;
    await cache.get('k1', issue, (v) => v.exp);
    assert.equal(issued, before + 1, 'the least recently used entry (k1) was dropped');
    cache.clear();
    await cache.get('k3', issue, (v) => v.exp);
    assert.equal(issued, before + 2, 'clear() (a rotation) drops everything');
  });

  it('keys differ per workload and per request, not per key order', () => {
    const a = cacheKey({ selector: { name: 'x' }, attributes: { unix: { uid: 1, gid: 2 } } });
    assert.equal(a, cacheKey({ attributes: { unix: { gid: 2, uid: 1 } }, selector: { name: 'x' } }));
    assert.notEqual(a, cacheKey({ selector: { name: 'x' }, attributes: { unix: { uid: 3, gid: 2 } } }));
  });
});

describe('workload api: attestation', () => {
  let tmp: { path: string; cleanup: () => void };
  before(() => (tmp = tempDir('wlapi-unit')));
  after(() => tmp.cleanup());

  it('unix: pid, uid, gid, the executable path and its SHA-256; no hash past the size limit', async () => {
    const cred = { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() };
    const a = await attestUnix(cred, { binaryHashMaxSizeBytes: -1 });
    assert.equal(a.attested, true);
    assert.equal(a.binary_path, realpathSync(process.execPath));
    assert.equal(a.binary_hash, createHash('sha256').update(readFileSync(process.execPath)).digest('hex'));
    const small = await attestUnix(cred, { binaryHashMaxSizeBytes: 1024 });
    assert.equal(small.binary_path, a.binary_path);
    assert.equal(small.binary_hash, undefined);
    const gone = await attestUnix({ pid: 0x3fffffff, uid: 1, gid: 1 }, { binaryHashMaxSizeBytes: -1 });
    assert.deepEqual(gone, { attested: true, pid: 0x3fffffff, uid: 1, gid: 1 });
  });

  it("unix: an executable's hash is read once per file identity (device, inode, size, times), then cached", async () => {
    const cred = { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() };
    const hashCache = new Map<string, string>();
    const real = await attestUnix(cred, { binaryHashMaxSizeBytes: -1, hashCache });
    assert.equal(hashCache.size, 1);
    const key = fileKey(statSync(`/proc/${process.pid}/exe`));
    assert.equal(hashCache.get(key), real.binary_hash);
    // a cached entry is what the next attestation reports: the file is not read again
    hashCache.set(key, 'f'.repeat(64));
    assert.equal((await attestUnix(cred, { binaryHashMaxSizeBytes: -1, hashCache })).binary_hash, 'f'.repeat(64));
  });

  it('peer credentials: SO_PEERCRED through koffi names the connecting process', async () => {
    const path = join(tmp.path, 'peer.sock');
    const got = new Promise<ReturnType<typeof peerCredentials>>((resolve) => {
      const server = createServer((s: Socket) => {
        resolve(peerCredentials(s));
        s.destroy();
        server.close();
      }).listen(path, () => connect(path).on('error', () => {}));
    });
    assert.deepEqual(await got, { pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
  });

  it('kubernetes: the container ID in /proc/PID/cgroup, from each runtime and cgroup driver', () => {
    const uidU = POD_UID.replace(/-/g, '_');
    assert.deepEqual(containerOf(`0::/kubepods/besteffort/pod${POD_UID}/${CID}\n`), {
      containerId: CID,
      podUid: POD_UID,
    });
    assert.deepEqual(
      containerOf(
        `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${uidU}.slice/cri-containerd-${CID}.scope\n`,
      ),
      { containerId: CID, podUid: POD_UID },
    );
    assert.deepEqual(containerOf(`12:pids:/system.slice/docker-${CID}.scope\n`), { containerId: CID });
    assert.deepEqual(containerOf('0::/user.slice/user-0.slice/session-1.scope\n'), {});
  });

  describe('kubernetes: against a kubelet stand-in (HTTPS, bearer token)', () => {
    let kubelet: FakeKubelet;
    const proc = () => join(tmp.path, 'proc');
    before(async () => {
      const dir = join(tmp.path, 'kubelet');
      mkdirSync(dir);
      kubelet = await startFakeKubelet(dir, [
        pod({
          name: 'other',
          namespace: 'ns',
          uid: '00000000-0000-0000-0000-000000000000',
          serviceAccount: 'x',
          containerId: 'b'.repeat(64),
        }),
        pod({
          name: 'web-1',
          namespace: 'shop',
          uid: POD_UID,
          serviceAccount: 'web',
          containerId: CID,
          labels: { app: 'web' },
        }),
      ]);
      mkdirSync(join(proc(), '42'), { recursive: true });
      writeFileSync(join(proc(), '42', 'cgroup'), `0::/kubepods/burstable/pod${POD_UID}/${CID}\n`);
      mkdirSync(join(proc(), '43'), { recursive: true });
      writeFileSync(join(proc(), '43', 'cgroup'), '0::/system.slice/sshd.service\n');
    });
    after(() => kubelet.close());

    const client = (o: object = {}) =>
      new KubeletClient(
        { secure_port: kubelet.port, token_path: kubelet.tokenPath, ca_path: kubelet.caPath, ...o },
        '127.0.0.1',
      );

    it('finds the pod of the container and reports namespace, service account, name, uid, labels', async () => {
      const a = await attestKubernetes(42, client(), proc());
      assert.deepEqual(a, {
        attested: true,
        namespace: 'shop',
        service_account: 'web',
        pod_name: 'web-1',
        pod_uid: POD_UID,
        labels: { app: 'web' },
      });
      assert.equal(kubelet.requests.at(-1)?.authorization, 'Bearer kubelet-test-token');
    });

    it('a process in no container is not attested; a kubelet refusing the token is an error', async () => {
      assert.equal(await attestKubernetes(43, client(), proc()), undefined);
      await assert.rejects(attestKubernetes(42, client({ anonymous: true }), proc()), /401/);
    });

    it("read_only_port: the kubelet's unauthenticated HTTP port, no token sent", async () => {
      const seen: (string | undefined)[] = [];
      const ro = createHttpServer((req, res) => {
        seen.push(req.headers.authorization);
        const items = [pod({ name: 'ro-1', namespace: 'ro', uid: POD_UID, serviceAccount: 'sa', containerId: CID })];
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ items }));
      });
      await new Promise<void>((r) => ro.listen(0, '127.0.0.1', r));
      try {
        const port = (ro.address() as AddressInfo).port;
        const a = await attestKubernetes(42, new KubeletClient({ read_only_port: port }, '127.0.0.1'), proc());
        assert.equal(a?.pod_name, 'ro-1');
        assert.deepEqual(seen, [undefined]);
      } finally {
        ro.close();
      }
    });

    it("verifies the kubelet's certificate with ca_path unless skip_verify", async () => {
      // another stand-in's CA: not the one that signed this kubelet's certificate
      mkdirSync(join(tmp.path, 'kubelet2'));
      const other = await startFakeKubelet(join(tmp.path, 'kubelet2'), []);
      await other.close();
      const wrongCa = other.caPath;
      await assert.rejects(attestKubernetes(42, client({ ca_path: wrongCa }), proc()), /certificate|kubelet/);
      assert.equal(
        (await attestKubernetes(42, client({ ca_path: '/nonexistent', skip_verify: true }), proc()))?.pod_name,
        'web-1',
      );
    });
  });
});

describe('workload api: the socket', () => {
  let tmp: { path: string; cleanup: () => void };
  before(() => (tmp = tempDir('wlapi-sock')));
  after(() => tmp.cleanup());

  it('is made with mode 0666 by default (or the given mode), and removed on close', async () => {
    const path = join(tmp.path, 'a.sock');
    const l = await listenUnix(path, 0o666, 'listen', (s) => s.destroy());
    assert.equal(statSync(path).mode & 0o777, 0o666);
    assert.ok(statSync(path).isSocket());
    await l.close();
    assert.throws(() => statSync(path), /ENOENT/);
    const r = await listenUnix(path, 0o660, 'listen', (s) => s.destroy());
    assert.equal(statSync(path).mode & 0o777, 0o660);
    await r.close();
  });

  it('replaces a stale socket, refuses a live one and any other file', async () => {
    const path = join(tmp.path, 'b.sock');
    // a socket file whose listener is gone (a tbot killed with SIGKILL: nothing unlinked it)
    const kill = "() => process.kill(process.pid, 'SIGKILL')";
    const script = `require('net').createServer().listen(${JSON.stringify(path)}, ${kill})`;
    spawnSync(process.execPath, ['-e', script]);
    assert.ok(statSync(path).isSocket());
    const l = await listenUnix(path, 0o666, 'listen', (s) => s.destroy());
    await assert.rejects(
      listenUnix(path, 0o666, 'services[0].listen', () => {}),
      /services\[0\]\.listen: .* is in use/,
    );
    await l.close();
    writeFileSync(path, 'not a socket');
    await assert.rejects(
      listenUnix(path, 0o666, 'listen', () => {}),
      /exists and is not a socket/,
    );
  });

  it('refuses a missing directory, and one every user may write without the sticky bit', async () => {
    await assert.rejects(
      listenUnix(join(tmp.path, 'no', 'c.sock'), 0o666, 'listen', () => {}),
      /does not exist/,
    );
    const open = join(tmp.path, 'open');
    mkdirSync(open);
    chmodSync(open, 0o777);
    await assert.rejects(
      listenUnix(join(open, 'c.sock'), 0o666, 'listen', () => {}),
      /writable by every user/,
    );
    // sticky: still refused as the socket's own directory (another user could bind the name first)
    chmodSync(open, 0o1777);
    await assert.rejects(
      listenUnix(join(open, 'c.sock'), 0o666, 'listen', () => {}),
      /the socket's directory .* is writable by every user/,
    );
  });

  it("checks every directory up to / (sshd's StrictModes): owner root or tbot, writable by no one else", async () => {
    const base = join(tmp.path, 'strict');
    mkdirSync(join(base, 'a', 'b'), { recursive: true });
    chmodSync(base, 0o755);
    chmodSync(join(base, 'a'), 0o755);
    chmodSync(join(base, 'a', 'b'), 0o755);
    const sock = join(base, 'a', 'b', 's.sock');
    // /tmp (sticky, root's) above is fine; so is a 0755 directory of tbot's
    const ok = await listenUnix(sock, 0o666, 'listen', () => {});
    await ok.close();
    chmodSync(join(base, 'a', 'b'), 0o775);
    await assert.rejects(
      listenUnix(sock, 0o666, 'listen', () => {}),
      /directory .*b is writable by its group/,
    );
    chmodSync(join(base, 'a', 'b'), 0o755);
    chmodSync(join(base, 'a'), 0o777);
    await assert.rejects(
      listenUnix(sock, 0o666, 'listen', () => {}),
      /a, above the socket's directory, is writable by every user without the sticky bit/,
    );
    chmodSync(join(base, 'a'), 0o1777);
    const sticky = await listenUnix(sock, 0o666, 'listen', () => {});
    await sticky.close();
    chmodSync(join(base, 'a'), 0o755);
    if (process.getuid?.() !== 0) return; // (chown needs root)
    chownSync(join(base, 'a'), 65534, 65534);
    await assert.rejects(
      listenUnix(sock, 0o666, 'listen', () => {}),
      /is owned by uid 65534/,
    );
    chownSync(join(base, 'a'), 0, 0);
    // a symlink on the path as given, another user's, is refused too (they could point it elsewhere)
    symlinkSync(join(base, 'a'), join(base, 'link'));
    lchownSync(join(base, 'link'), 65534, 65534);
    await assert.rejects(
      listenUnix(join(base, 'link', 'b', 's.sock'), 0o666, 'listen', () => {}),
      /link, on the path to .* is a symlink owned by uid 65534/,
    );
  });
});

describe('workload api: tbot.yaml', () => {
  const base = {
    version: 'v2',
    auth_server: '127.0.0.1:3025',
    onboarding: { join_method: 'token', token: 'x', ca_pins: [`sha256:${'ab'.repeat(32)}`] },
    storage: { type: 'memory' },
  };
  const svc = (o: object) => ({ ...base, services: [{ type: 'workload-identity-api', ...o }] });
  const ok = { listen: 'unix:///run/tbot/workload.sock', selector: { name: 'web' } };

  it("takes Teleport's fields: listen, selector, attestors (unix, kubernetes with its kubelet), lifetime", () => {
    const cfg = validateTbotConfig(
      svc({
        ...ok,
        selector: { labels: { team: ['blue'] } },
        attestors: {
          unix: { binary_hash_max_size_bytes: 1024 },
          kubernetes: { enabled: true, kubelet: { secure_port: 10250, skip_verify: true, anonymous: true } },
        },
        credential_ttl: '10m',
        renewal_interval: '5m',
      }),
    );
    const s = cfg.outputs[0] as WorkloadApiConfig;
    assert.equal(s.socketPath, '/run/tbot/workload.sock');
    assert.equal(s.socketMode, 0o666);
    assert.equal(s.credentialTtlMs, 600_000);
    assert.deepEqual(s.selector, { labels: { team: ['blue'] } });
    assert.equal(
      (validateTbotConfig(svc({ ...ok, socket_mode: '0660' })).outputs[0] as WorkloadApiConfig).socketMode,
      0o660,
    );
  });

  it('refuses what it cannot do, naming the field and why', () => {
    const refuses = (o: object, re: RegExp) => assert.throws(() => validateTbotConfig(svc(o)), re);
    refuses({ ...ok, listen: 'tcp://0.0.0.0:4040' }, /outputs\[0\]\.listen: .*unix socket only.*SO_PEERCRED.*tcp:\/\//);
    refuses({ ...ok, listen: 'unix://relative.sock' }, /listen: expected unix:\/\/\/absolute\/path/);
    refuses({ ...ok, attestors: { docker: { enabled: true } } }, /attestors\.docker: mwi has no docker attestor/);
    refuses({ ...ok, selector: {} }, /selector: expected \{ name: NAME \} or \{ labels/);
    refuses({ ...ok, socket_mode: 'rw' }, /socket_mode: expected an octal mode/);
    refuses(
      { ...ok, attestors: { kubernetes: { enabled: true, kubelet: { secure_port: 1, read_only_port: 2 } } } },
      /exclude each other/,
    );
    assert.throws(() => validateTbotConfig({ ...svc(ok), oneshot: true }), /one-shot run serves nothing/);
  });

  it("Teleport's `tbot start workload-identity-api` mode points to tbot.yaml's service", () => {
    assert.throws(
      () => startMode('start', ['workload-identity-api']),
      /mwi has no workload-identity-api mode .*configure the service in tbot\.yaml .*docs\/workload-api\.md/,
    );
  });
});
