#!/usr/bin/env node
import { readFileSync, unlinkSync } from 'node:fs';
import { resolve } from 'node:path';
import { stringify } from 'yaml';
import { buildTbotFile, readTbotFile, validateTbotConfig } from '../agent/config.js';
import { destinationPaths } from '../agent/destinations/index.js';
import { startBot } from '../agent/bot.js';
import { MwiError } from '../errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { createLogger, LOG_FORMATS, setLogDefaults, type LogFormat } from '../util/log.js';
import { installProcessGuards } from '../util/process-guard.js';
import { VERSION } from '../version.js';
import { runMain, usageError } from './common.js';
import { completionScript } from './help/completion.js';
import { parseCommandLine } from './help/parse.js';
import { helpFor, programHelp } from './help/render.js';
import type { FlagValues } from './help/table.js';
import { TBOT } from './help/tbot-table.js';
import { installSystemd, pidDir, selfCommand } from './install-systemd.js';
import { inFlagTerms } from './tbot-fields.js';
import { keypairCreate } from './tbot-keypair.js';
import { checkModeFlags, envBool, startMode } from './tbot-modes.js';

/**
 * Writes tbot's process id to `path` and removes the file when the process exits (a normal end,
 * a stop signal or an error), unless another process wrote its own id there meanwhile.
 */
function writePidFile(path: string): void {
  const text = `${process.pid}\n`;
  try {
    writeFileAtomic(path, text, 0o644);
  } catch (cause) {
    throw new MwiError('BAD_CONFIG', `cannot write ${path}`, { field: '--pid-file', cause });
  }
  process.once('exit', () => {
    try {
      if (readFileSync(path, 'utf8') === text) unlinkSync(path);
    } catch {
      // already gone
    }
  });
}

/** `tbot install systemd`: the unit runs `tbot start -c FILE`; it may write FILE's directories only. */
function tbotInstallSystemd(values: FlagValues<typeof TBOT.flags>): void {
  const file = values.config ?? (process.env.TBOT_CONFIG_PATH || undefined);
  if (!file) throw usageError('tbot install systemd needs -c FILE: the tbot.yaml the service starts with', '--config');
  const config = resolve(file);
  const cfg = validateTbotConfig(readTbotFile(config));
  const pidFile = values['pid-file'] ? resolve(values['pid-file']) : undefined;
  const paths = [
    ...destinationPaths(cfg.storage),
    ...cfg.outputs.flatMap((o) => (o.destination ? destinationPaths(o.destination) : [])),
  ];
  installSystemd(values, {
    description: 'mwi tbot: Machine & Workload Identity agent',
    defaultName: 'tbot',
    defaultUser: 'tbot',
    execStart: [...selfCommand(), 'start', '-c', config, ...(pidFile ? ['--pid-file', pidFile] : [])],
    readWritePaths: [...paths.map((p) => resolve(p)), ...(pidFile ? [pidDir(pidFile)] : [])],
  });
}

runMain('tbot', async () => {
  const line = parseCommandLine(TBOT, process.argv.slice(2));
  const values = line.values;
  // from here on, a fatal error is printed in the log's format too (runMain)
  const format = (values['log-format'] ?? 'text') as LogFormat;
  if (LOG_FORMATS.includes(format)) setLogDefaults({ format });
  if (line.help) return void process.stdout.write(helpFor(TBOT, line.command));
  if (line.path === 'version' || values.version)
    return void process.stdout.write(`tbot v${VERSION} node ${process.version}\n`);
  if (!line.command) {
    process.stdout.write(programHelp(TBOT));
    return 2;
  }
  if (line.path === 'completion') return void process.stdout.write(completionScript(TBOT, line.args[0]));
  if (line.path === 'keypair create') return keypairCreate(values);
  if (line.path === 'install systemd') return tbotInstallSystemd(values);
  const cmd = line.path;
  const mode = startMode(cmd, line.args);
  checkModeFlags(cmd, mode, values);
  const env = process.env;
  const flags = {
    ...values,
    config: values.config ?? (env.TBOT_CONFIG_PATH || undefined),
    debug: values.debug || envBool(env.TBOT_DEBUG, 'TBOT_DEBUG'),
  };
  if (
    !flags.config &&
    !flags['auth-server'] &&
    !flags['proxy-server'] &&
    !flags['join-uri'] &&
    !env.TELEPORT_AUTH_SERVER &&
    !env.TELEPORT_PROXY
  )
    throw usageError(
      `tbot ${cmd} needs the Auth Service and a way to join: -c tbot.yaml, or --auth-server HOST:PORT (or ` +
        `--proxy-server) with --token and --ca-pin; "tbot ${cmd} --help" lists the flags, with an example`,
    );
  let file: Record<string, unknown>;
  let cfg: ReturnType<typeof validateTbotConfig>;
  try {
    file = buildTbotFile(flags, env);
    cfg = validateTbotConfig(file, env);
  } catch (err) {
    throw inFlagTerms(err, values);
  }
  if (cmd === 'configure') {
    if (values['pid-file']) process.stderr.write('note: --pid-file has no tbot.yaml key; give it to tbot start\n');
    if (!values.output) return void process.stdout.write(stringify(file));
    try {
      writeFileAtomic(values.output, stringify(file), 0o600);
    } catch (cause) {
      throw new MwiError('BAD_CONFIG', `cannot write ${values.output}`, { field: '--output', cause });
    }
    process.stderr.write(`Wrote the configuration to ${values.output}\n`);
    return;
  }
  const log = createLogger('tbot', cfg.debug ? 'debug' : 'info', format);
  const abort = new AbortController();
  const onStop = (sig: string) => {
    log.info(`received ${sig}, stopping`);
    abort.abort();
  };
  process.once('SIGINT', () => onStop('SIGINT'));
  process.once('SIGTERM', () => onStop('SIGTERM'));
  // after the stop signals are handled: a stop ends in a normal exit, which removes the file
  if (values['pid-file']) writePidFile(values['pid-file']);
  // what tbot runs with, never a secret: the token and method options stay out
  log.debug('configuration', {
    mode,
    auth_servers: cfg.authServers.join(','),
    join_method: cfg.joinMethod,
    storage: cfg.storage.type,
    outputs: cfg.outputs.length,
    credential_ttl_ms: cfg.credentialTtlMs,
    renewal_interval_ms: cfg.renewalIntervalMs,
    oneshot: cfg.oneshot,
    pid_file: values['pid-file'],
  });
  // the daemon serves --diag-addr and keeps renewing: a stray rejection is logged, not fatal
  if (!cfg.oneshot) installProcessGuards(log);
  if (cfg.insecure) log.warn('--insecure: the Auth Service will not be authenticated on first contact');
  // before startBot: a daemon may wait there for its first join, and SIGHUP's default is to exit
  let renewNow = (): void => {};
  const renew = () => {
    log.info('renewing everything now (signal)');
    renewNow();
  };
  process.on('SIGHUP', renew);
  process.on('SIGUSR1', renew);
  const bot = await startBot(cfg, log, abort.signal);
  renewNow = () => bot.renewNow();
  await bot.done;
  if (cfg.oneshot) log.info('one-shot run complete');
});
