import assert from 'node:assert/strict';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { clusterFile, startCluster, type TestCluster } from '../helpers/cluster.js';
import { REPO_ROOT, run, tempDir, type CliProcess } from '../helpers/procs.js';
import {
  addWorkloadBot,
  ROOT_ONLY,
  lines,
  pythonClient,
  startTbot,
  stopTbot,
  tbotYaml,
  workload,
} from '../helpers/workload-api.js';

/**
 * The single-file tbot (npm run build:binary) serves the Workload API: koffi's native module, which
 * reads SO_PEERCRED, is embedded in the binary and loaded from it (src/util/native.ts loadKoffi).
 */
describe('workload api: the tbot binary', ROOT_ONLY, () => {
  let c: TestCluster;
  let tmp: { path: string; cleanup: () => void };
  let tbot: CliProcess | undefined;
  before(async () => {
    tmp = tempDir('wlapi-bin');
    chmodSync(tmp.path, 0o755);
    c = await startCluster('wlapi-bin.example');
  });
  after(async () => {
    await stopTbot(tbot);
    await c?.stop();
    tmp?.cleanup();
  });

  it('attests a workload over the socket and hands it an X.509-SVID', async () => {
    const bin = join(tmp.path, 'bin');
    const built = await run(process.execPath, [join(REPO_ROOT, 'scripts/build-binary.mjs'), '--out', bin], {
      timeoutMs: 300_000,
      cwd: REPO_ROOT,
    });
    assert.equal(built.code, 0, built.stderr);
    await c.tctlOk([
      'create',
      '-f',
      clusterFile(
        c,
        'wi.yaml',
        'kind: workload_identity\nversion: v1\nmetadata: { name: pid, labels: { team: bin } }\nspec:\n' +
          '  spiffe:\n    id: /bin/{{ workload.unix.uid }}\n',
      ),
    ]);
    const token = await addWorkloadBot(c, 'binbot', 'bin');
    const dir = join(tmp.path, 'tbot');
    mkdirSync(dir);
    const socket = join(tmp.path, 'w.sock');
    const file = tbotYaml(
      c,
      token,
      dir,
      `  - type: workload-identity-api\n    listen: unix://${socket}\n    selector: { name: pid }\n`,
    );
    tbot = await startTbot(file, join(bin, 'tbot'));
    const client = await pythonClient(join(tmp.path, 'py'));
    mkdirSync(join(tmp.path, 'out'), { mode: 0o777 });
    chmodSync(join(tmp.path, 'out'), 0o777);
    const r = await workload(client, socket, ['x509', join(tmp.path, 'out')], { uid: 65534, gid: 65534 });
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}\n${tbot.out()}`);
    assert.deepEqual(lines(r)[0]!.spiffe_ids, ['spiffe://wlapi-bin.example/bin/65534']);
  });
});
