// tbot's SPIFFE Workload API: X.509-SVIDs per second to 100 concurrent workloads (each a process
// of its own, so each is attested and issued for, not served from the cache), the same workloads
// asking again (the cache), and the time from `tctl auth rotate --type spiffe` to every connected
// workload holding an SVID of the new CA.
//
// A workload here is a connection made by a child process (SO_PEERCRED names the process that
// connected) and handed to this process over Node's IPC channel; the bench then speaks gRPC on it
// with node:http2 (one empty X509SVIDRequest, messages read as they come). The child stays alive
// until the end (tbot answers a connection only while the process that made it lives), and all
// connect at once (tbot closes a connection that makes no call within 10 s).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { connect as h2connect, constants, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { cli, spawnCli, waitFor, type CliProcess } from '../../test/helpers/procs.js';
import type { LoadBench } from '../measure.js';

const WORKLOADS = 100;

/** A child process of its own (its pid and uid are the peer's), started; `connect()` has it connect to `socket`. */
function childConnector(socket: string, children: ChildProcess[]): Promise<() => Promise<Socket>> {
  const code =
    `setInterval(() => {}, 1 << 30); process.send('ready'); process.once('message', () => { ` +
    `const s = require('net').connect(${JSON.stringify(socket)}, () => process.send('sock', s)); });`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    children.push(child);
    child.once('error', reject);
    child.once('exit', (c) => c !== 0 && c !== null && reject(new Error(`child exited ${c}`)));
    child.once('message', () =>
      resolve(
        () =>
          new Promise((res) => {
            child.once('message', (_m, handle) => res(handle as Socket));
            child.send('go');
          }),
      ),
    );
  });
}

/** One FetchX509SVID stream: `onMessage` for each X509SVIDResponse (its bytes). */
function fetchX509Svid(session: ClientHttp2Session, onMessage: (msg: Buffer) => void): ClientHttp2Stream {
  const stream = session.request({
    [constants.HTTP2_HEADER_METHOD]: 'POST',
    [constants.HTTP2_HEADER_PATH]: '/SpiffeWorkloadAPI/FetchX509SVID',
    'content-type': 'application/grpc',
    te: 'trailers',
    'workload.spiffe.io': 'true',
  });
  // one gRPC message: not compressed, length 0 (an empty X509SVIDRequest)
  stream.end(Buffer.from([0, 0, 0, 0, 0]));
  let buf = Buffer.alloc(0);
  stream.on('data', (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 5 && buf.length >= 5 + buf.readUInt32BE(1)) {
      const len = buf.readUInt32BE(1);
      onMessage(buf.subarray(5, 5 + len));
      buf = buf.subarray(5 + len);
    }
  });
  stream.on('error', () => {});
  return stream;
}

/** The first message of a new FetchX509SVID stream on `session`. */
function firstSvid(session: ClientHttp2Session): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = fetchX509Svid(session, () => {
      s.close();
      resolve();
    });
    s.on(
      'response',
      (h) => h['grpc-status'] && h['grpc-status'] !== '0' && reject(new Error(String(h['grpc-message']))),
    );
    s.on('trailers', (h) => h['grpc-status'] !== '0' && reject(new Error(String(h['grpc-message']))));
  });
}

async function tctl(b: LoadBench, args: string[]): Promise<void> {
  const r = await cli('tctl', ['--data-dir', b.c.dataDir, ...args]);
  if (r.code !== 0) throw new Error(`tctl ${args.join(' ')}: ${r.stderr}`);
}

export async function workloadApi(b: LoadBench): Promise<void> {
  const { c } = b;
  const dir = join(c.dir, 'workload-api');
  mkdirSync(dir, { recursive: true });
  const file = (name: string, text: string) => (writeFileSync(join(dir, name), text), join(dir, name));
  await tctl(b, [
    'create',
    '-f',
    file(
      'wi.yaml',
      'kind: workload_identity\nversion: v1\nmetadata: { name: bench-wl, labels: { team: bench } }\n' +
        'spec:\n  spiffe:\n    id: /bench/{{ workload.unix.uid }}\n',
    ),
  ]);
  await tctl(b, [
    'create',
    '-f',
    file(
      'role.yaml',
      'kind: role\nversion: v7\nmetadata: { name: bench-wl }\nspec:\n  allow:\n' +
        '    workload_identity_labels: { team: [bench] }\n',
    ),
  ]);
  const add = await cli('tctl', [
    '--data-dir',
    c.dataDir,
    'bots',
    'add',
    'bench-wl',
    '--roles',
    'bench-wl',
    '--format',
    'json',
  ]);
  const { token } = JSON.parse(add.stdout) as { token: string };
  const socket = join(dir, 'workload.sock');
  const yaml = file(
    'tbot.yaml',
    `version: v2\nauth_server: ${c.addr}\nonboarding:\n  join_method: token\n  token: ${token}\n` +
      `  ca_pins: ["${c.pin}"]\nstorage:\n  type: directory\n  path: ${join(dir, 'storage')}\n` +
      `services:\n  - type: workload-identity-api\n    listen: unix://${socket}\n    selector: { name: bench-wl }\n`,
  );
  const tbot: CliProcess = spawnCli('tbot', ['start', '-c', yaml], { MWI_LOG_LEVEL: 'warn' });
  const sessions: ClientHttp2Session[] = [];
  const children: ChildProcess[] = [];
  try {
    await waitFor('the Workload API', () => existsSocket(socket), 30_000);
    const connectors: (() => Promise<Socket>)[] = [];
    for (let i = 0; i < WORKLOADS; i++) connectors.push(await childConnector(socket, children));
    for (const sock of await Promise.all(connectors.map((c) => c())))
      sessions.push(h2connect('http://localhost', { createConnection: () => sock }));
    // 1. every workload's first SVID at once: attestation and one issuance each
    const t0 = performance.now();
    await Promise.all(sessions.map((s) => firstSvid(s)));
    const issueMs = performance.now() - t0;
    const issueRate = (WORKLOADS / issueMs) * 1000;
    b.rows.push({
      bench: `Workload API: first X.509-SVID of ${WORKLOADS} workloads (attested, issued)`,
      concurrency: WORKLOADS,
      n: WORKLOADS,
      rate: issueRate,
      p50: NaN,
      p99: NaN,
      note: `${issueMs.toFixed(0)} ms for all`,
    });
    // 2. the same workloads asking again: answered from tbot's cache
    const rounds = b.quick ? 2 : 10;
    const t1 = performance.now();
    for (let r = 0; r < rounds; r++) await Promise.all(sessions.map((s) => firstSvid(s)));
    const cachedRate = ((WORKLOADS * rounds) / (performance.now() - t1)) * 1000;
    b.rows.push({
      bench: `Workload API: X.509-SVIDs to the same ${WORKLOADS} workloads again (tbot's cache)`,
      concurrency: WORKLOADS,
      n: WORKLOADS * rounds,
      rate: cachedRate,
      p50: NaN,
      p99: NaN,
    });
    // 3. rotation: every workload holds a stream; how long until each has an SVID of the new CA
    const got = new Array<number>(WORKLOADS).fill(0);
    const streams = sessions.map((s, i) => fetchX509Svid(s, () => got[i]!++));
    await waitFor('every stream open', () => got.every((n) => n >= 1), 30_000);
    const t2 = performance.now();
    await tctl(b, ['auth', 'rotate', '--type', 'spiffe']);
    await waitFor('every workload renewed', () => got.every((n) => n >= 2), 60_000, 20);
    const rotationMs = performance.now() - t2;
    for (const s of streams) s.close();
    b.rows.push({
      bench: `Workload API: SPIFFE CA rotation to all ${WORKLOADS} workloads holding a new SVID`,
      concurrency: WORKLOADS,
      n: 1,
      rate: NaN,
      p50: rotationMs,
      p99: NaN,
      note: 'includes up to one 5 s trust bundle poll',
    });
    Object.assign(b.extra, {
      workload_api_first_svid_per_s: issueRate,
      workload_api_cached_svid_per_s: cachedRate,
      workload_api_rotation_ms: rotationMs,
    });
  } finally {
    for (const s of sessions) s.destroy();
    for (const child of children) child.kill('SIGKILL');
    tbot.kill('SIGTERM');
  }
}

function existsSocket(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}
