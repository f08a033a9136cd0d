// The deploy guides, run: every command block in docs/deploy/*.md marked `<!-- test: run -->` runs
// here, in order, in one bash script per page, against a real Auth Service, so that the guides
// cannot drift from the programs. Blocks that need what this machine lacks (systemd as PID 1, a
// Kubernetes cluster, a CI runner) are marked `skip` with a reason, printed below; their behaviour
// is proven by the route's own integration test.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { docScript, docSteps } from '../helpers/docs-blocks.js';
import { launchAuth } from '../helpers/launch-auth.js';
import { CLI_DIR, tempDir } from '../helpers/procs.js';

const REPO = resolve(CLI_DIR, '../../..');
const DOCS = join(REPO, 'docs/deploy');
const PAGE_MS = 90_000;
/** What the guides write for the Auth Service's address; each run gets the real one. */
const AUTH_ADDR = 'auth.example.com:3025';

const pages = readdirSync(DOCS)
  .filter((f) => f.endsWith('.md'))
  .sort();

/** Runs a page's script; resolves with its exit code and output (killed at PAGE_MS). */
function runPage(script: string, cwd: string, env: NodeJS.ProcessEnv) {
  return new Promise<{ code: number | null; out: string }>((done) => {
    const child = spawn('bash', ['-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    // the whole process group: a guide may start a daemon in the background
    const kill = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      out += `\ndocs test: killed after ${PAGE_MS / 1000} s`;
      kill();
    }, PAGE_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      kill();
      done({ code, out });
    });
  });
}

describe('deploy guides (docs/deploy)', { concurrency: 1 }, () => {
  it('has the guides', () => assert.ok(pages.includes('README.md') && pages.includes('linux.md'), pages.join(' ')));

  for (const page of pages) {
    it(page, async (t) => {
      const steps = docSteps(readFileSync(join(DOCS, page), 'utf8'));
      for (const s of steps) if (s.kind === 'skip') t.diagnostic(`${page}:${s.line} not run: ${s.reason}`);
      if (!steps.some((s) => s.kind !== 'skip')) return;
      // a cluster of its own, as a reader following one guide has: names one guide makes never
      // collide with another's (and no guide needs tctl create -f)
      const auth = await launchAuth({ clusterName: 'example.com', prefix: 'docs' });
      const dir = tempDir('docs-page');
      try {
        const bin = join(dir.path, '.bin');
        mkdirSync(bin);
        for (const name of ['tbot', 'tctl', 'mwi']) {
          writeFileSync(join(bin, name), `#!/bin/sh\nexec node ${join(CLI_DIR, `${name}.js`)} "$@"\n`);
          chmodSync(join(bin, name), 0o755);
        }
        const env: NodeJS.ProcessEnv = {
          PATH: `${bin}:${process.env.PATH}`,
          HOME: dir.path,
          LANG: 'C.UTF-8',
          MWI_DATA_DIR: auth.dataDir,
          // for hidden blocks only: where this checkout is (a guide's reader has its files at hand)
          MWI_DOCS_REPO: REPO,
        };
        const script = docScript(steps, { [AUTH_ADDR]: auth.addr });
        const { code, out } = await runPage(script, dir.path, env);
        assert.equal(code, 0, `${page}: its run blocks failed (exit ${code}):\n${out}`);
        for (const l of out.trimEnd().split('\n').slice(-3)) t.diagnostic(`${page} output: ${l}`);
      } finally {
        dir.cleanup();
        await auth.stop();
      }
    });
  }
});
