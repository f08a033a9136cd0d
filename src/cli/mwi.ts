#!/usr/bin/env node
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { loadAuthConfig, type AuthConfig } from '../auth/config.js';
import { answerDiagRequests, processSource, serveDiagnostics, workersSource } from '../auth/diag.js';
import { AuthMetrics } from '../auth/metrics.js';
import { AuthServer, prepareStorage } from '../auth/server.js';
import { loadKeypair } from '../auth/tls-keypairs.js';
import { createLogger, envLogLevel, LOG_FORMATS, setLogDefaults, type LogFormat } from '../util/log.js';
import { isSingleExecutable } from '../util/native.js';
import { installProcessGuards } from '../util/process-guard.js';
import { VERSION } from '../version.js';
import { exitCodeFor } from '../errors.js';
import { DEFAULT_DATA_DIR } from '../api/local.js';
import { cloneStorage, storageName } from '../storage/postgres-clone.js';
import { runMain, usageError } from './common.js';
import { completionScript } from './help/completion.js';
import { installSystemd, selfCommand } from './install-systemd.js';
import { MWI } from './help/mwi-table.js';
import { parseCommandLine } from './help/parse.js';
import { helpFor, programHelp } from './help/render.js';

type Ready = { type: 'ready'; address: string; caPin: string; clusterName: string };
/** Worker to primary: it could not start (the exit code the error calls for). */
type Failed = { type: 'failed'; code: number };

function waitForStop(): Promise<string> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

async function serve(cfg: AuthConfig, metrics: AuthMetrics): Promise<AuthServer> {
  const { dataDir, listen, clusterName, storage, tlsSans, joinMethods, connectionLimits, audit, auditRetentionMs } =
    cfg;
  const { httpsKeypairs, httpsKeypairsReloadMs } = cfg;
  const tls = { tlsSans, httpsKeypairs, httpsKeypairsReloadMs };
  const { workloadIdentity } = cfg;
  return AuthServer.start({
    dataDir,
    listen,
    clusterName,
    storage,
    joinMethods,
    connectionLimits,
    audit,
    auditRetentionMs,
    metrics,
    workloadIdentity,
    ...tls,
  });
}

/** The line `mwi start` prints once its diagnostics listener is bound (tests read the port from it). */
function announceDiag(address: string): void {
  process.stdout.write(`diagnostics (/livez /readyz /metrics) on http://${address}\n`);
}

/** One Auth Service process per worker: the port is shared (node:cluster), so is the storage. */
async function primary(cfg: AuthConfig, workers: number, diagAddr: string | undefined): Promise<void> {
  const log = createLogger('mwi');
  const diag = diagAddr ? await serveDiagnostics(diagAddr, workersSource(workers), log) : undefined;
  if (diag) announceDiag(diag.address);
  let stopping = false;
  let announced = false;
  // a worker that exits before any worker ever served (a bad data dir, a wrong cluster name) would
  // fail again on every restart: the whole service stops with its exit code instead of looping
  let failedToStart: (code: number) => void = () => {};
  const startFailure = new Promise<number>((resolve) => (failedToStart = resolve));
  // node:cluster starts `node [script] args`. A single executable is node and script in one file,
  // and takes every word after it as its own arguments: the first of them stands in for the script
  if (isSingleExecutable()) cluster.setupPrimary({ exec: process.argv[2]!, args: process.argv.slice(3) });
  const fork = () => {
    const w = cluster.fork({ MWI_WORKER: '1' });
    let failedCode: number | undefined;
    w.on('message', (m: Ready | Failed) => {
      if (m?.type === 'failed') failedCode = m.code;
      if (m?.type === 'ready' && !announced) {
        announced = true;
        process.stdout.write(
          `mwi auth service ${m.clusterName} listening on ${m.address} (${workers} workers)\nCA pin: ${m.caPin}\n`,
        );
      }
    });
    w.on('exit', (code, signal) => {
      if (stopping) return;
      if (!announced) {
        failedToStart(failedCode ?? (code || 1));
        return;
      }
      log.error('auth worker exited; starting another', { code, signal: signal ?? undefined });
      setTimeout(fork, 1000).unref();
    });
  };
  for (let i = 0; i < workers; i++) fork();
  // a reload is each worker's own: the signal is passed on
  if (cfg.httpsKeypairs.length === 0) process.on('SIGHUP', () => log.info('SIGHUP: no https_keypairs to reload'));
  else
    process.on('SIGHUP', () => {
      for (const w of Object.values(cluster.workers ?? {})) if (w && !w.isDead()) w.process.kill('SIGHUP');
    });
  const stop = await Promise.race([waitForStop(), startFailure]);
  stopping = true;
  if (typeof stop === 'number') {
    log.error('an auth worker failed to start (its error is above); stopping', { code: stop });
    process.exitCode = stop;
  } else process.stdout.write(`received ${stop}, shutting down\n`);
  await Promise.all(
    Object.values(cluster.workers ?? {}).map(
      (w) =>
        new Promise<void>((resolve) => {
          if (!w || w.isDead()) return resolve();
          w.once('exit', () => resolve());
          w.process.kill('SIGTERM');
        }),
    ),
  );
  await diag?.close();
}

runMain('mwi', async () => {
  const line = parseCommandLine(MWI, process.argv.slice(2));
  const values = line.values;
  if (line.help) return void process.stdout.write(helpFor(MWI, line.command));
  if (line.path === 'version' || values.version) {
    process.stdout.write(`mwi v${VERSION} node ${process.version}\n`);
    return;
  }
  if (!line.command) {
    process.stdout.write(programHelp(MWI));
    return 2;
  }
  if (line.path === 'completion') return void process.stdout.write(completionScript(MWI, line.args[0]));
  if (line.path === 'install systemd') {
    if (!values.config)
      throw usageError('mwi install systemd needs -c FILE: the mwi.yaml the service starts with', '--config');
    const config = resolve(values.config);
    const cfg = loadAuthConfig(config, {});
    const db = cfg.storage?.startsWith('sqlite://') ? cfg.storage.slice('sqlite://'.length) : undefined;
    const port = Number(/:(\d+)$/.exec(cfg.listen)?.[1]);
    // the unit grants no capability (CapabilityBoundingSet=): a port below 1024 would fail with EACCES
    if (port > 0 && port < 1024)
      process.stderr.write(
        `warning: listen ${cfg.listen}: the unit grants no capability, so a port below 1024 fails with EACCES; ` +
          'listen on a port >= 1024 (the default is 3025) behind a load balancer, or add ' +
          'AmbientCapabilities=CAP_NET_BIND_SERVICE and CapabilityBoundingSet=CAP_NET_BIND_SERVICE in a drop-in\n',
      );
    return installSystemd(values, {
      description: 'mwi Auth Service (Machine & Workload Identity)',
      defaultName: 'mwi',
      defaultUser: 'mwi',
      execStart: [...selfCommand(), 'start', '-c', config],
      readWritePaths: [resolve(cfg.dataDir), ...(db ? [dirname(resolve(db))] : [])],
    });
  }
  if (line.path === 'backend clone') {
    if (!values.to) throw usageError('the storage to copy into, e.g. postgres://mwi@db/mwi', '--to');
    const dataDir = values['data-dir'] ?? DEFAULT_DATA_DIR;
    const n = await cloneStorage({ from: values.from, to: values.to, dataDir, force: !!values.force });
    process.stdout.write(
      `cloned ${n} items from ${storageName(values.from, dataDir)} to ${storageName(values.to, dataDir)}\n`,
    );
    return;
  }
  const format = (values['log-format'] ?? 'text') as LogFormat;
  if (!LOG_FORMATS.includes(format)) throw usageError(`expected ${LOG_FORMATS.join(' or ')}`, '--log-format');
  let level;
  try {
    level = envLogLevel();
  } catch (err) {
    throw usageError((err as Error).message);
  }
  // every logger of the process, those made at import included (audit.ts)
  setLogDefaults({ format, ...(level ? { level } : {}) });
  const diagAddr = values['diag-addr'];
  const cfg = loadAuthConfig(values.config, values);
  // a long-running service: a stray rejection is logged, not fatal (see installProcessGuards)
  installProcessGuards(createLogger(cluster.isWorker ? 'auth' : 'mwi'));
  const workers =
    values.workers === 'auto' ? availableParallelism() : values.workers === undefined ? 1 : Number(values.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64)
    throw usageError('expected a number from 1 to 64, or auto', '--workers');
  if (workers > 1 && cfg.storage?.startsWith('memory'))
    throw usageError('memory storage cannot be shared by several workers', '--workers');

  if (workers > 1 && cluster.isPrimary) {
    // bad certificate files are reported once, not by every worker
    for (const f of cfg.httpsKeypairs) loadKeypair(f, Date.now());
    // the workers find the database migrated and the CAs made (none of them races to create them)
    await prepareStorage(cfg);
    return primary(cfg, workers, diagAddr);
  }
  const metrics = new AuthMetrics();
  let server: AuthServer | undefined;
  // SIGHUP reloads the certificate files; set
  // before the start, so that one arriving meanwhile does not end a worker (it reads the files anyway)
  if (cfg.httpsKeypairs.length > 0) process.on('SIGHUP', () => server?.reloadCertificates());
  // without them, a reload (systemctl reload: SIGHUP) has nothing to do and must not stop the service
  else if (!cluster.isWorker)
    process.on('SIGHUP', () => createLogger('mwi').info('SIGHUP: no https_keypairs to reload'));
  // one process alone serves its own diagnostics, from before the start: /readyz says "starting"
  const diag =
    diagAddr && !cluster.isWorker
      ? await serveDiagnostics(
          diagAddr,
          processSource(metrics, () => server),
          createLogger('mwi'),
        )
      : undefined;
  try {
    server = await serve(cfg, metrics);
  } catch (err) {
    await diag?.close();
    // a worker's IPC channel would keep it alive, serving nothing: it exits and the primary,
    // seeing it fail before it ever served, stops the service
    if (cluster.isWorker) {
      // (a disconnected worker exits 0: the primary learns the real code from this message)
      process.send?.({ type: 'failed', code: exitCodeFor(err) } satisfies Failed);
      process.disconnect?.();
    }
    throw err;
  }
  if (cluster.isWorker) {
    answerDiagRequests(processSource(metrics, () => server));
    process.send?.({
      type: 'ready',
      address: server.address,
      caPin: server.caPin,
      clusterName: server.clusterName,
    } satisfies Ready);
  } else {
    process.stdout.write(
      `mwi auth service ${server.clusterName} listening on ${server.address}\nCA pin: ${server.caPin}\n`,
    );
    if (diag) announceDiag(diag.address);
  }
  const sig = await waitForStop();
  if (!cluster.isWorker) process.stdout.write(`received ${sig}, shutting down\n`);
  await server.close();
  await diag?.close();
  // a worker's IPC channel would keep it alive after its server closed
  if (cluster.isWorker) process.disconnect?.();
});
