import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/src/cli, next to this compiled helper's dist/test/helpers. */
export const CLI_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli');

/** The repository root (the build is in its dist/). */
export const REPO_ROOT = resolve(CLI_DIR, '../../..');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (bounded by `timeoutMs`). */
export function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, {
      env: { ...process.env, ...opts.env },
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
    if (child.stdin) {
      // a child that exits without reading its input must not fail the test with EPIPE
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input);
    }
  });
}

type Cli = 'mwi' | 'tctl' | 'tbot';

/** Runs one of mwi's CLIs (mwi, tctl, tbot) from the build. */
export function cli(
  name: Cli,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {},
) {
  return run(process.execPath, [join(CLI_DIR, `${name}.js`), ...args], opts);
}

/** A long-running CLI; `out()` is everything it wrote so far, stdout and stderr. */
export type CliProcess = ChildProcess & { out: () => string };

/** Starts a long-running CLI (with `nodeArgs` for Node.js itself); output is collected for assertions. */
export function spawnCli(name: Cli, args: string[], env?: NodeJS.ProcessEnv, nodeArgs: string[] = []): CliProcess {
  const argv = [...nodeArgs, join(CLI_DIR, `${name}.js`), ...args];
  const child = spawn(process.execPath, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return Object.assign(child, { out: () => out });
}

/** Waits until `check` returns a truthy value, polling; fails with `what` after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 15_000,
  everyMs = 50,
): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Waits for a child process to exit; returns its code. */
export function exited(child: ChildProcess, timeoutMs = 15_000): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolvePromise, reject) => {
    const t = setTimeout(() => reject(new Error('process did not exit')), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(t);
      resolvePromise(code);
    });
  });
}

/** A temp dir removed by the returned cleanup. */
export function tempDir(prefix: string): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), `mwi-${prefix}-`));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** A shell script that runs this build's `name` with its arguments: the program a CI job finds on its PATH. */
export const cliShim = (name: Cli): string =>
  `#!/bin/sh\nexec "${process.execPath}" "${join(CLI_DIR, `${name}.js`)}" "$@"\n`;

/** Creates `dir` (and its parents) holding an executable cliShim for each of `names`. */
export function writeCliShims(dir: string, names: Cli[]): void {
  mkdirSync(dir, { recursive: true });
  for (const name of names) writeFileSync(join(dir, name), cliShim(name), { mode: 0o755 });
}

/**
 * Empties, in `vars`, every name of this process's environment that `vars` does not set: run()
 * adds this process's environment, which a CI job must not see. Returns `vars`.
 */
export function withoutHostEnv(vars: Record<string, string>): Record<string, string> {
  for (const k of Object.keys(process.env)) if (!(k in vars)) vars[k] = '';
  return vars;
}
