// A load generator process for the burst: the parent forks one per core, hands each its share of
// joins, and says "go" to all at once. Each join is a new client with its own connection, like
// a CI job starting on its own machine.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '../src/api/client.js';
import { PATHS } from '../src/api/wire.js';

export interface BurstJob {
  token: string;
  publicKeyPem: string;
}

interface Setup {
  addr: string;
  ca: string[];
  jobs: BurstJob[];
}

type ToChild = { setup: Setup } | { go: true };
type FromChild = { ready: true } | { done: true; failed: number; firstError?: string };

async function child(): Promise<void> {
  let setup: Setup | undefined;
  process.on('message', (m: ToChild) => {
    if ('setup' in m) {
      setup = m.setup;
      process.send!({ ready: true } satisfies FromChild);
      return;
    }
    void (async () => {
      const { addr, ca, jobs } = setup!;
      const results = await Promise.allSettled(
        jobs.map(async (j) => {
          const api = new ApiClient({ addrs: [addr], tls: { ca } });
          try {
            await api.call('POST', PATHS.join, { token: j.token, join_method: 'token', public_key: j.publicKeyPem });
          } finally {
            api.close();
          }
        }),
      );
      const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      process.send!(
        {
          done: true,
          failed: failures.length,
          ...(failures[0] ? { firstError: String(failures[0].reason) } : {}),
        } satisfies FromChild,
        () => process.exit(0),
      );
    })();
  });
}

/**
 * Runs `jobs` spread over `procs` generator processes, all started at once; resolves with the
 * wall time from "go" until the last join has its answer.
 */
export async function burst(
  addr: string,
  ca: string[],
  jobs: BurstJob[],
  procs: number,
): Promise<{ wallMs: number; failed: number; firstError?: string }> {
  const children: ChildProcess[] = Array.from({ length: procs }, () =>
    fork(fileURLToPath(import.meta.url), ['--child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
  );
  const next = (c: ChildProcess) =>
    new Promise<FromChild>((resolve, reject) => {
      c.once('message', (m: FromChild) => resolve(m));
      c.once('exit', (code) => reject(new Error(`load generator exited ${code}`)));
    });
  await Promise.all(
    children.map((c, i) => {
      const ready = next(c);
      c.send({ setup: { addr, ca, jobs: jobs.filter((_, j) => j % procs === i) } } satisfies ToChild);
      return ready;
    }),
  );
  const t0 = performance.now();
  const done = children.map((c) => next(c));
  for (const c of children) c.send({ go: true } satisfies ToChild);
  const results = (await Promise.all(done)) as Array<Extract<FromChild, { done: true }>>;
  const wallMs = performance.now() - t0;
  const firstError = results.find((r) => r.firstError)?.firstError;
  return { wallMs, failed: results.reduce((n, r) => n + r.failed, 0), ...(firstError ? { firstError } : {}) };
}

if (process.argv.includes('--child')) await child();
