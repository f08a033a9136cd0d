// The container images (issue #13 item 3), built with podman from the single-file binaries and
// run for real: `version` in each, then an Auth Service container (SQLite in a volume) and a tbot
// container on the host network, both with a read-only root file system and no tmpfs, whose
// output volume a real ssh uses to log in to a real sshd.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { docScript, docSteps } from '../helpers/docs-blocks.js';
import { launchAuth } from '../helpers/launch-auth.js';
import { cli, REPO_ROOT, run, tempDir, waitFor, writeCliShims, type RunResult } from '../helpers/procs.js';
import { freePort, sshRun, startSshd, type Sshd } from '../helpers/sshd.js';

const VERSION = (JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** The user the images run as (distroless's nonroot). */
const UID = 65532;

/** Why this machine cannot build and run the images, or undefined when it can. */
function blocker(): string | undefined {
  if (process.platform !== 'linux') return 'container images are Linux images';
  if (process.getuid?.() !== 0) return 'needs root (podman builds and runs the images as root here)';
  if (spawnSync('podman', ['--version']).status !== 0) return 'no podman (apt-get install podman runc mmdebstrap)';
  if (spawnSync('runc', ['--version']).status !== 0) return 'no runc (apt-get install runc)';
  return undefined;
}

/**
 * This machine's podman settings: runc (crun fails on this kind of machine) and no default
 * ulimits (containers here may not set resource limits; they inherit the caller's instead).
 */
const CONTAINERS_CONF =
  '[containers]\ndefault_ulimits = []\n\n[engine]\ncgroup_manager = "cgroupfs"\nruntime = "runc"\n';

/** Everything the images are built from: equal keys, equal images (the build is deterministic). */
function inputsKey(): string {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else files.push(join(dir, e.name));
    }
  };
  walk(join(REPO_ROOT, 'src'));
  walk(join(REPO_ROOT, 'deploy/container'));
  for (const f of ['scripts/build-binary.mjs', 'scripts/build-image.sh', 'package.json', 'package-lock.json'])
    files.push(join(REPO_ROOT, f));
  const h = createHash('sha256').update(process.version);
  for (const f of files.sort()) h.update(`${relative(REPO_ROOT, f)}\0`).update(readFileSync(f));
  return h.digest('hex').slice(0, 16);
}

/**
 * The shell script of a guide page as test/integration/docs-deploy.test.ts runs it, plus the
 * blocks skipped there because they need the images, which this file has: their skip reason says
 * `container.test.ts runs this block`; and the images' names swapped for the ones built here.
 */
function guideScript(md: string, replace: Record<string, string>): string {
  const steps = docSteps(md, (reason) => reason.includes('container.test.ts runs this block'));
  return docScript(steps, replace);
}

describe('container images (podman)', { skip: blocker() }, () => {
  let dir: ReturnType<typeof tempDir>;
  const env: { CONTAINERS_CONF?: string } = {};
  const key = inputsKey();
  const TBOT = `localhost/mwi-test/tbot-distroless:${key}`;
  const MWI = `localhost/mwi-test/mwi-distroless:${key}`;
  /** Set when the images cannot be built for want of a Debian mirror: each test then skips, saying so. */
  let unbuildable: string | undefined;
  const containers: string[] = [];
  const procs: ChildProcess[] = [];

  const podman = (args: string[], timeoutMs = 60_000): Promise<RunResult> => run('podman', args, { env, timeoutMs });
  const podmanOk = async (args: string[]): Promise<string> => {
    const r = await podman(args);
    assert.equal(r.code, 0, `podman ${args.join(' ')}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  const exists = async (image: string) => (await podman(['image', 'exists', image])).code === 0;
  /** A container name this test removes at the end, whatever happens. */
  const name = (what: string) => {
    const n = `mwi-test-${what}-${randomBytes(4).toString('hex')}`;
    containers.push(n);
    return n;
  };
  /** A host directory for a volume, owned by the images' user (what the guide tells users to do). */
  const volumeDir = (rel: string, mode: number) => {
    const p = join(dir.path, rel);
    mkdirSync(p, { recursive: true, mode });
    chownSync(p, UID, UID);
    return p;
  };
  const skipIfUnbuildable = (t: TestContext) => {
    if (unbuildable) t.skip(unbuildable);
    return unbuildable !== undefined;
  };
  /** As the guide runs the images: on the host network, the root file system read-only, no tmpfs. */
  const HOST_READ_ONLY = ['--network=host', '--read-only', '--read-only-tmpfs=false'];
  /**
   * `tbot start --oneshot` in a tbot container (HOST_READ_ONLY, as `user` if given): its tbot.yaml
   * from `conf` (mounted read-only at /etc/tbot), and `volumes` (`HOST:CONTAINER`).
   */
  const tbotOnce = (o: { conf: string; volumes: string[]; user?: string }) =>
    podman([
      'run',
      '--rm',
      '--name',
      name('tbot'),
      ...(o.user ? ['--user', o.user] : []),
      ...HOST_READ_ONLY,
      '-v',
      `${o.conf}:/etc/tbot:ro`,
      ...o.volumes.flatMap((v) => ['-v', v]),
      TBOT,
      'start',
      '-c',
      '/etc/tbot/tbot.yaml',
      '--oneshot',
    ]);

  before(
    async () => {
      dir = tempDir('container');
      env.CONTAINERS_CONF = join(dir.path, 'containers.conf');
      writeFileSync(env.CONTAINERS_CONF, CONTAINERS_CONF);
      if ((await exists(TBOT)) && (await exists(MWI))) return;
      // the binaries are built into this test's own directory: no other test's build/ is written to
      const img = await run('bash', [join(REPO_ROOT, 'scripts/build-image.sh')], {
        env: { ...env, BIN_DIR: join(dir.path, 'bin'), TBOT_IMAGE: TBOT, MWI_IMAGE: MWI },
        timeoutMs: 900_000,
      });
      if (img.code !== 0 && /mmdebstrap could not build/.test(img.stderr)) {
        unbuildable = `no Debian mirror for mmdebstrap and no registry: ${img.stderr.trim().split('\n').pop()}`;
        return;
      }
      assert.equal(img.code, 0, `build:image: ${img.stderr}${img.stdout}`);
      // sizes, for the record
      for (const l of img.stdout.trim().split('\n').slice(-3)) process.stdout.write(`${l}\n`);
      // earlier builds of this test (other keys) go: each holds two ~90 MB binaries
      const old = (
        await podmanOk(['images', '--format', '{{.Repository}}:{{.Tag}}', '--filter', 'reference=localhost/mwi-test/*'])
      )
        .split('\n')
        .filter((r) => r && !r.endsWith(`:${key}`));
      if (old.length > 0) await podman(['rmi', ...old]);
    },
    { timeout: 900_000 },
  );

  after(async () => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    if (containers.length > 0) await podman(['rm', '--force', '--ignore', '--time', '0', ...containers]);
    dir?.cleanup();
  });

  it('the tbot image runs `version` with a read-only root file system and no tmpfs', async (t) => {
    if (skipIfUnbuildable(t)) return;
    const out = await podmanOk(['run', '--rm', '--read-only', '--read-only-tmpfs=false', TBOT, 'version']);
    assert.match(out, new RegExp(`^tbot v${VERSION.replace(/\./g, '\\.')} `));
    const cfg = JSON.parse(await podmanOk(['image', 'inspect', '--format', '{{json .Config}}', TBOT]));
    assert.equal(cfg.User, `${UID}:${UID}`);
    assert.deepEqual(cfg.Entrypoint, ['tbot']);
    assert.deepEqual(cfg.Cmd, ['start', '-c', '/etc/tbot/tbot.yaml']);
    assert.deepEqual(Object.keys(cfg.Volumes ?? {}), ['/var/lib/tbot']);
    assert.equal(cfg.Labels['org.opencontainers.image.version'], VERSION);
    assert.equal(cfg.Labels['org.opencontainers.image.title'], 'tbot');
    // no shell in the image: nothing but the binary to run
    const sh = await podman(['run', '--rm', '--entrypoint', '/bin/sh', TBOT, '-c', 'true']);
    assert.notEqual(sh.code, 0);
  });

  it('the Auth Service image runs `mwi version` and `tctl version` the same way', async (t) => {
    if (skipIfUnbuildable(t)) return;
    const ro = ['run', '--rm', '--read-only', '--read-only-tmpfs=false'];
    assert.match(await podmanOk([...ro, MWI, 'version']), /^mwi v/);
    assert.match(await podmanOk([...ro, '--entrypoint', 'tctl', MWI, 'version']), /^tctl v/);
    const cfg = JSON.parse(await podmanOk(['image', 'inspect', '--format', '{{json .Config}}', MWI]));
    assert.equal(cfg.User, `${UID}:${UID}`);
    assert.deepEqual(cfg.Entrypoint, ['mwi']);
    assert.deepEqual(cfg.Cmd, ['start', '-c', '/etc/mwi/mwi.yaml']);
    assert.ok(cfg.Env.includes('TMPDIR=/var/lib/mwi'), cfg.Env.join(' '));
  });

  describe('an Auth Service container and a tbot container on the host network', () => {
    let mwiName: string;
    let mwiOut = '';
    let addr: string;
    let pin: string;
    let mwiData: string;
    let sshd: Sshd | undefined;
    let out: string;
    let tbotData: string;
    let tbotConf: string;

    before(async () => {
      if (unbuildable) return;
      const conf = join(dir.path, 'mwi-conf');
      mkdirSync(conf);
      writeFileSync(join(conf, 'mwi.yaml'), 'cluster_name: example.com\nlisten: 127.0.0.1:0\n');
      writeFileSync(
        join(conf, 'role.yaml'),
        'kind: role\nversion: v7\nmetadata: { name: deployer }\nspec:\n  allow: { logins: [root] }\n',
      );
      mwiData = volumeDir('mwi-data', 0o700);
      mwiName = name('mwi');
      const p = spawn(
        'podman',
        [
          'run',
          '--rm',
          '--name',
          mwiName,
          ...HOST_READ_ONLY,
          '-v',
          `${conf}:/etc/mwi:ro`,
          '-v',
          `${mwiData}:/var/lib/mwi`,
          MWI,
        ],
        { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      procs.push(p);
      p.stdout.on('data', (d: Buffer) => (mwiOut += d.toString()));
      p.stderr.on('data', (d: Buffer) => (mwiOut += d.toString()));
      const m = await waitFor(
        'the Auth Service container to listen',
        () => {
          if (p.exitCode !== null) throw new Error(`the mwi container exited: ${mwiOut}`);
          return /listening on (\S+)\nCA pin: (\S+)/.exec(mwiOut);
        },
        30_000,
      );
      [, addr, pin] = m as unknown as [string, string, string];
      // sshd trusts the cluster's user CA; tctl on the host reads the data volume's admin identity
      const hostTctl = {
        tctlOk: async (args: string[]) => {
          const r = await cli('tctl', ['--data-dir', mwiData, ...args]);
          if (r.code !== 0) throw new Error(`tctl ${args.join(' ')}: ${r.stderr}`);
          return r.stdout;
        },
      };
      sshd = await startSshd(hostTctl, join(dir.path, 'sshd'));
      tbotConf = join(dir.path, 'tbot-conf');
      mkdirSync(tbotConf);
      tbotData = volumeDir('tbot-data', 0o700);
      out = volumeDir('machine-id', 0o755);
    });

    after(async () => {
      await sshd?.stop();
    });

    it('runs SQLite in its data volume, its native module loaded from there (TMPDIR), no tmpfs', async (t) => {
      if (skipIfUnbuildable(t)) return;
      assert.ok(existsSync(join(mwiData, 'mwi.db')), readdirSync(mwiData).join(' '));
      assert.equal(statSync(join(mwiData, 'mwi.db')).uid, UID);
      assert.ok(
        readdirSync(mwiData).some((f) => f.startsWith('mwi-sqlite-')),
        `no extracted native module in ${readdirSync(mwiData).join(' ')}`,
      );
    });

    it("the image's tctl adds a bot; a tbot container joins with --oneshot and writes its outputs into a volume", async (t) => {
      if (skipIfUnbuildable(t)) return;
      await podmanOk(['exec', mwiName, 'tctl', 'create', '/etc/mwi/role.yaml']);
      const bot = JSON.parse(
        await podmanOk(['exec', mwiName, 'tctl', 'bots', 'add', 'robot', '--roles', 'deployer', '--format', 'json']),
      ) as { token: string };
      assert.equal(JSON.parse(await podmanOk(['exec', mwiName, 'tctl', 'status', '--format', 'json'])).ca_pin, pin);
      // the token in a file only the container's user can read, as the guide says
      writeFileSync(join(tbotConf, 'token'), `${bot.token}\n`, { mode: 0o600 });
      chownSync(join(tbotConf, 'token'), UID, UID);
      writeFileSync(
        join(tbotConf, 'tbot.yaml'),
        [
          'version: v2',
          `auth_server: ${addr}`,
          'onboarding:',
          '  join_method: token',
          '  token: /etc/tbot/token',
          `  ca_pins: ["${pin}"]`,
          'storage:',
          '  type: directory',
          '  path: /var/lib/tbot',
          'outputs:',
          '  - type: identity',
          // the host path inside the container too: ssh_config names its files by their paths, so
          // an ssh on the host finds them (what the guide recommends)
          `    destination: { type: directory, path: ${out} }`,
          '',
        ].join('\n'),
      );
      const r = await tbotOnce({ conf: tbotConf, volumes: [`${tbotData}:/var/lib/tbot`, `${out}:${out}`] });
      assert.equal(r.code, 0, `${r.stderr}${r.stdout}`);
      assert.match(r.stderr + r.stdout, /one-shot run complete/);
      // written by the container's user: key private, certificates readable, the swap's links in place
      for (const [f, mode] of [
        ['key', 0o600],
        ['key-cert.pub', 0o644],
        ['tlscert', 0o644],
        ['ssh_config', 0o644],
      ] as const) {
        const s = statSync(join(out, f));
        assert.equal(s.uid, UID, `${f} owner`);
        assert.equal(s.mode & 0o777, mode, `${f} mode ${(s.mode & 0o777).toString(8)}`);
        assert.ok(lstatSync(join(out, f)).isSymbolicLink(), `${f} is a link into the current set`);
      }
      // the renewable identity went to the storage volume, not the container
      const state = statSync(join(tbotData, 'state.json'));
      assert.equal(state.uid, UID);
      assert.equal(state.mode & 0o077, 0, `state.json mode ${(state.mode & 0o777).toString(8)}`);
    });

    it('a real ssh on the host logs in with the files the container wrote', async (t) => {
      if (skipIfUnbuildable(t)) return;
      const r = await sshRun(out, sshd!.port, 'root', 'echo hello-from-a-container-identity');
      assert.equal(r.code, 0, `ssh: ${r.stderr}\nsshd: ${sshd!.log().slice(-2000)}`);
      assert.equal(r.stdout.trim(), 'hello-from-a-container-identity');
    });

    it('the tbot container restarts from its storage volume without a token', async (t) => {
      if (skipIfUnbuildable(t)) return;
      writeFileSync(
        join(tbotConf, 'tbot.yaml'),
        readFileSync(join(tbotConf, 'tbot.yaml'), 'utf8').replace('  token: /etc/tbot/token\n', ''),
      );
      const r = await tbotOnce({ conf: tbotConf, volumes: [`${tbotData}:/var/lib/tbot`, `${out}:${out}`] });
      assert.equal(r.code, 0, `${r.stderr}${r.stdout}`);
      assert.match(r.stderr + r.stdout, /resumed identity from storage/);
    });

    it('runs as another user given with --user, writing files that user owns', async (t) => {
      if (skipIfUnbuildable(t)) return;
      const bot = JSON.parse(
        await podmanOk(['exec', mwiName, 'tctl', 'bots', 'add', 'robot2', '--roles', 'deployer', '--format', 'json']),
      ) as { token: string };
      const conf = join(dir.path, 'as-user-conf');
      mkdirSync(conf);
      const asUser = join(dir.path, 'as-user-out');
      mkdirSync(asUser, { mode: 0o755 });
      chownSync(asUser, 1000, 1000);
      writeFileSync(
        join(conf, 'tbot.yaml'),
        [
          'version: v2',
          `auth_server: ${addr}`,
          `onboarding: { join_method: token, token: ${bot.token}, ca_pins: ["${pin}"] }`,
          'storage: { type: memory }',
          'outputs:',
          `  - { type: identity, destination: { type: directory, path: ${asUser} } }`,
          '',
        ].join('\n'),
      );
      const r = await tbotOnce({ conf, volumes: [`${asUser}:${asUser}`], user: '1000:1000' });
      assert.equal(r.code, 0, `${r.stderr}${r.stdout}`);
      const key = statSync(join(asUser, 'key'));
      assert.equal(key.uid, 1000);
      assert.equal(key.mode & 0o777, 0o600);
    });

    it('a host directory the container user cannot write is refused, naming the path and the uid', async (t) => {
      if (skipIfUnbuildable(t)) return;
      const rootOwned = join(dir.path, 'root-owned');
      mkdirSync(rootOwned, { mode: 0o755 });
      const r = await tbotOnce({ conf: tbotConf, volumes: [`${tbotData}:/var/lib/tbot`, `${rootOwned}:${out}`] });
      assert.equal(r.code, 2, `${r.stderr}${r.stdout}`);
      assert.ok(
        r.stderr.includes(`cannot write in ${out}: permission denied (tbot runs as uid 65532)`),
        `${r.stderr}${r.stdout}`,
      );
      assert.deepEqual(readdirSync(rootOwned), []);
    });

    it('the Auth Service container stops on SIGTERM; its extracted native module stays, one copy', async (t) => {
      if (skipIfUnbuildable(t)) return;
      await podmanOk(['stop', '--time', '10', mwiName]);
      await waitFor('the mwi container to exit', () => procs[0]!.exitCode !== null, 15_000);
      assert.match(mwiOut, /received SIGTERM, shutting down/);
      // content-addressed (src/util/native.ts): the next start, or one after a kill, reuses it
      assert.deepEqual(
        readdirSync(mwiData)
          .filter((f) => f.startsWith('mwi-sqlite-'))
          .map((f) => f.replace(/-[0-9a-f]{16}$/, '-HASH')),
        [`mwi-sqlite-${UID}-HASH`],
      );
    });
  });

  it('the guide (docs/deploy/container.md) runs, its container blocks included', async (t) => {
    if (skipIfUnbuildable(t)) return;
    // what test/integration/docs-deploy.test.ts gives a page (an Auth Service it administers with
    // plain tctl, at the address the guides write as auth.example.com:3025), plus the images
    const auth = await launchAuth({ clusterName: 'example.com', prefix: 'container-guide' });
    const home = join(dir.path, 'guide');
    const bin = join(home, '.bin');
    writeCliShims(bin, ['tbot', 'tctl', 'mwi']);
    const port = await freePort();
    const script = guideScript(readFileSync(join(REPO_ROOT, 'docs/deploy/container.md'), 'utf8'), {
      [`mwi/tbot-distroless:${VERSION}`]: TBOT,
      [`mwi/mwi-distroless:${VERSION}`]: MWI,
      'auth.example.com:3025': auth.addr,
      '0.0.0.0:3025': `127.0.0.1:${port}`,
    });
    // the guide's container names
    containers.push('tbot', 'mwi');
    try {
      const r = await run('bash', ['-euo', 'pipefail', '-c', script], {
        cwd: home,
        env: { ...env, PATH: `${bin}:${process.env.PATH}`, HOME: home, LANG: 'C.UTF-8', MWI_DATA_DIR: auth.dataDir },
        timeoutMs: 90_000,
      });
      assert.equal(r.code, 0, `the guide's blocks failed (${r.code}):\n${r.stdout}${r.stderr}`);
      assert.equal(statSync(join(home, 'machine-id/key')).uid, UID);
      assert.match(r.stdout, /The bot token: /); // tctl in the Auth Service container
      assert.match(r.stderr, /one-shot run complete/); // tbot --oneshot
      assert.match(r.stderr, /wrote output/); // the tbot container kept running
    } finally {
      await auth.stop();
    }
  });
});
