import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestCluster } from '../helpers/cluster.js';
import { exited, spawnCli, waitFor, type CliProcess } from '../helpers/procs.js';
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

const NOBODY = { uid: 65534, gid: 65534 };

/** The Workload API socket's life with the real tbot: mode, a live socket, a stale one, removal on stop. */
describe('workload api: the socket (real tbot)', ROOT_ONLY, () => {
  let c: TestCluster;
  let tmp: { path: string; cleanup: () => void };
  let client: string;
  const running: CliProcess[] = [];
  let n = 0;
  before(async () => {
    ({ tmp, client, c } = await workloadScene('wlapi-sock', 'wlapi-sock.example'));
    await createIdentity(
      c,
      'any',
      'kind: workload_identity\nversion: v1\nmetadata: { name: any, labels: { team: s } }\n' +
        'spec:\n  spiffe:\n    id: /uid/{{ workload.unix.uid }}\n',
    );
  });
  after(async () => {
    for (const t of running) if (t.exitCode === null) t.kill('SIGKILL');
    await c?.stop();
    tmp?.cleanup();
  });

  /** A tbot.yaml for a new bot serving on `socket`, with `extra` service keys. */
  const config = (socket: string, extra = ''): Promise<string> =>
    workloadApiTbot(
      c,
      { bot: `sockbot-${++n}`, team: 's', dir: join(tmp.path, `tbot-${n}`), socket, name: 'any' },
      extra,
    );

  it('socket_mode restricts who may connect: with 0600 another uid cannot, root can', async () => {
    const socket = join(tmp.path, 'restricted.sock');
    const tbot = await startTbot(await config(socket, '    socket_mode: "0600"\n'));
    running.push(tbot);
    assert.equal(statSync(socket).mode & 0o777, 0o600);
    const denied = await workload(client, socket, ['jwt', 'x'], NOBODY);
    assert.equal(lines(denied)[0]!.error, 'UNAVAILABLE', 'the kernel refuses the connect(2)');
    const ok = await workload(client, socket, ['jwt', 'x']);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    await stopTbot(tbot);
    assert.equal(existsSync(socket), false, 'removed when tbot stops');
  });

  it('a live socket is not taken over: the second tbot stops before joining, naming it; a dead one is replaced', async () => {
    const socket = join(tmp.path, 'shared.sock');
    const first = await startTbot(await config(socket));
    running.push(first);
    const second = spawnCli('tbot', ['start', '-c', await config(socket)]);
    running.push(second);
    const code = await exited(second, 30_000);
    assert.equal(code, 2, second.out());
    assert.match(second.out(), /listen: .*shared\.sock is in use: another process \(another tbot\?\) accepts/);
    // checked before the join: the second bot's token is not spent
    const bot = `sockbot-${n}`;
    const joined = (name: string) => c.audit().some((e) => e.event === 'bot.join' && e.bot_name === name);
    assert.ok(joined(`sockbot-${n - 1}`) && !joined(bot), 'the first tbot joined, the second did not');
    const still = await workload(client, socket, ['jwt', 'x']);
    assert.equal(still.code, 0, 'the first tbot still serves');
    // a tbot killed with SIGKILL leaves its socket behind; the next one (resuming the same storage) replaces it
    first.kill('SIGKILL');
    await exited(first);
    assert.ok(statSync(socket).isSocket());
    const again = await startTbot(join(tmp.path, `tbot-${n - 1}`, 'tbot.yaml'));
    running.push(again);
    const r = await workload(client, socket, ['jwt', 'x']);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}\n${again.out()}`);
    await stopTbot(again);
    await waitFor('the socket removed', () => !existsSync(socket));
  });
});
