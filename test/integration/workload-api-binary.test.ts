import assert from 'node:assert/strict';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestCluster } from '../helpers/cluster.js';
import { REPO_ROOT, run, type CliProcess } from '../helpers/procs.js';
import {
  ROOT_ONLY,
  lines,
  startTbot,
  stopTbot,
  workload,
  workloadApiTbot,
  workloadScene,
} from '../helpers/workload-api.js';
import { createIdentity } from '../helpers/workload-identity.js';

/**
 * The single-file tbot (npm run build:binary) serves the Workload API: koffi's native module, which
 * reads SO_PEERCRED, is embedded in the binary and loaded from it (src/util/native.ts loadKoffi).
 */
describe('workload api: the tbot binary', ROOT_ONLY, () => {
  let c: TestCluster;
  let tmp: { path: string; cleanup: () => void };
  let tbot: CliProcess | undefined;
  let client: string;
  before(async () => {
    ({ tmp, client, c } = await workloadScene('wlapi-bin', 'wlapi-bin.example'));
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
    await createIdentity(
      c,
      'pid',
      'kind: workload_identity\nversion: v1\nmetadata: { name: pid, labels: { team: bin } }\nspec:\n' +
        '  spiffe:\n    id: /bin/{{ workload.unix.uid }}\n',
    );
    const socket = join(tmp.path, 'w.sock');
    const file = await workloadApiTbot(c, {
      bot: 'binbot',
      team: 'bin',
      dir: join(tmp.path, 'tbot'),
      socket,
      name: 'pid',
    });
    tbot = await startTbot(file, join(bin, 'tbot'));
    mkdirSync(join(tmp.path, 'out'), { mode: 0o777 });
    chmodSync(join(tmp.path, 'out'), 0o777);
    const r = await workload(client, socket, ['x509', join(tmp.path, 'out')], { uid: 65534, gid: 65534 });
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}\n${tbot.out()}`);
    assert.deepEqual(lines(r)[0]!.spiffe_ids, ['spiffe://wlapi-bin.example/bin/65534']);
  });
});
