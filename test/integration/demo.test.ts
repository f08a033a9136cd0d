// `npm run demo` (scripts/demo.mjs, run after the build as demo.sh runs it): it stops on Ctrl-C, and it
// and its Auth Service and tbot stop when whatever started them goes away (npm killed, terminal closed).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';
import { exited, tempDir, waitFor } from '../helpers/procs.js';

// compiled to dist/test/integration: the package root is three levels up
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** PIDs of live processes whose command line mentions `dir`. */
function processesUsing(dir: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(dir)) pids.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Starts the demo under `sh` (as npm runs it), in `dir`; resolves once tbot has written its output. */
async function startDemo(dir: string) {
  // `; :` keeps sh as the demo's parent, as npm's `sh -c` is
  const sh = spawn('sh', ['-c', `${process.execPath} ${resolve(ROOT, 'scripts/demo.mjs')} ${dir}; :`], {
    env: { ...process.env, MWI_DEMO_DIR: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  sh.stdout.on('data', (d: Buffer) => (out += d.toString()));
  sh.stderr.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor('the demo bot to write its output', () => /wrote output/.test(out) || sh.exitCode !== null, 30_000);
  assert.match(out, /wrote output/, out);
  return { sh, out: () => out };
}

describe('npm run demo', () => {
  const tmp = tempDir('demo');
  after(() => tmp.cleanup());

  it('stops the Auth Service and tbot when its parent is killed', async () => {
    const dir = resolve(tmp.path, 'killed');
    const { sh } = await startDemo(dir);
    // the demo, the Auth Service and tbot
    assert.ok(processesUsing(dir).length >= 3, String(processesUsing(dir)));
    sh.kill('SIGKILL');
    await exited(sh);
    await waitFor('every demo process to exit', () => processesUsing(dir).length === 0, 15_000);
  });

  it('stops everything on SIGINT (Ctrl-C)', async () => {
    const dir = resolve(tmp.path, 'sigint');
    const { sh, out } = await startDemo(dir);
    // the node process running demo.mjs (sh's command line names it too)
    const demo = processesUsing(dir).find((pid) => {
      const [exe, script] = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      return exe === process.execPath && script?.endsWith('demo.mjs');
    });
    assert.ok(demo);
    process.kill(demo, 'SIGINT');
    assert.equal(await exited(sh), 0);
    assert.equal(processesUsing(dir).length, 0);
    assert.match(out(), /stopping tbot and the Auth Service/);
  });
});
