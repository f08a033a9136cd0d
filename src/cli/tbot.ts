#!/usr/bin/env node
import { readFileSync, unlinkSync } from 'node:fs';
import { stringify } from 'yaml';
import { buildTbotFile, validateTbotConfig } from '../agent/config.js';
import { startBot } from '../agent/bot.js';
import { MwiError } from '../errors.js';
import { writeFileAtomic } from '../util/fs.js';
import { createLogger, LOG_FORMATS, type LogFormat } from '../util/log.js';
import { installProcessGuards } from '../util/process-guard.js';
import { VERSION } from '../version.js';
import { parseFlags, runMain, usageError } from './common.js';
import { keypairCommand } from './tbot-keypair.js';
import { checkModeFlags, envBool, startMode } from './tbot-modes.js';

const HELP = `Usage: tbot <command> [flags]

Commands:
  start [MODE]      join the cluster and keep credentials fresh (daemon; --oneshot to run once)
  configure [MODE]  print the tbot.yaml that the flags describe (-o FILE writes it)
  keypair create --storage URI [--overwrite] [--format text|json]
                    make the keypair for bound_keypair joining in tbot's storage; print its public key
  keypair create --static [--static-key-path FILE] [--overwrite] [--format text|json]
                    a key for CI secrets (printed, or written to FILE); nothing goes to storage
  version           print the version (also tbot --version)

Modes (start, configure):
  (none), legacy      the legacy form: --data-dir (storage) and --destination-dir (an identity output)
  identity, id, ssh   one identity output (SSH + TLS credentials): --destination URI [--storage URI]
  Teleport's other modes (database, kubernetes, application, ...) are outputs mwi does not have.

URIs (--storage, --data-dir, --destination): file:///PATH or a path (a directory), or memory://

Flags (start, configure):
  -c, --config FILE           tbot.yaml (version: v2); flags below override it ($TBOT_CONFIG_PATH)
      --auth-server ADDR      Auth Service address, HOST:PORT (comma-separated for several);
                              $TELEPORT_AUTH_SERVER when neither a flag nor the file gives one
      --proxy-server ADDR     its public address instead, HOST:PORT ($TELEPORT_PROXY): without --ca-pin, its
                              certificate is verified with the system trust store (+ $NODE_EXTRA_CA_CERTS)
      --join-method METHOD    join method (default token)
      --token TOKEN           join token, or an absolute path to a file holding it ($TELEPORT_BOT_TOKEN);
                              method token: only for a first join (a restart from --storage needs none)
      --ca-pin PIN            sha256:<hex> of the Auth Service CA (repeatable); printed by mwi start
      --storage URI           storage for the bot's internal identity (default /var/lib/tbot; memory:// with --oneshot)
      --data-dir URI          the legacy form of --storage
      --destination URI       (identity mode) where the output is written
      --destination-dir DIR   (legacy form) write an identity output here
      --reader-user U         (repeatable) a user who may read the output's files (POSIX ACLs: readers)
      --reader-group G        (repeatable) a group who may read them
      --cluster NAME          the output's cluster (mwi has one: the bot's own)
      --allow-reissue         accepted for Teleport's command lines; no effect in mwi
      --fips                  refused: mwi has no FIPS build
      --certificate-ttl D     credential lifetime (default 1h, at most 24h)
      --renewal-interval D    how often to renew (default 20m, less than the TTL)
      --oneshot               join, write outputs once, exit
      --insecure              trust the Auth Service without a CA pin (unsafe)
      --join-uri URI          tbot+proxy+METHOD://TOKEN[:PARAM]@HOST:PORT (or tbot+auth+...): address, join
                              method, token and its parameter in one, as Teleport prints it (tbot.yaml join_uri)
      --registration-secret S bound_keypair registration secret (or a file path; or $TBOT_REGISTRATION_SECRET)
      --registration-secret-path FILE
                              the same, read from FILE (not with --registration-secret)
      --static-key-path FILE  bound_keypair static private key (PEM) from FILE (or $TBOT_BOUND_KEYPAIR_STATIC_KEY)
      --diag-addr HOST:PORT   serve /livez, /readyz, /readyz/<service>, /metrics (daemon)
  -d, --debug                 debug logging ($TBOT_DEBUG=true; tbot.yaml debug: true)
      --log-format FORMAT     text (default) or json: one JSON object per log line
      --pid-file FILE         (start) write tbot's process id to FILE; removed when tbot exits
  -o, --output FILE           (configure) write the tbot.yaml to FILE (0600, atomically) instead of stdout

Signals: SIGHUP or SIGUSR1 renew everything now; SIGINT/SIGTERM stop.
`;

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  'auth-server': { type: 'string' },
  'proxy-server': { type: 'string' },
  'join-method': { type: 'string' },
  token: { type: 'string' },
  'ca-pin': { type: 'string', multiple: true },
  storage: { type: 'string' },
  'data-dir': { type: 'string' },
  destination: { type: 'string' },
  'destination-dir': { type: 'string' },
  'certificate-ttl': { type: 'string' },
  'renewal-interval': { type: 'string' },
  oneshot: { type: 'boolean' },
  insecure: { type: 'boolean' },
  'registration-secret': { type: 'string' },
  'registration-secret-path': { type: 'string' },
  'static-key-path': { type: 'string' },
  'join-uri': { type: 'string' },
  'diag-addr': { type: 'string' },
  'reader-user': { type: 'string', multiple: true },
  'reader-group': { type: 'string', multiple: true },
  cluster: { type: 'string' },
  'allow-reissue': { type: 'boolean' },
  fips: { type: 'boolean' },
  debug: { type: 'boolean', short: 'd' },
  'log-format': { type: 'string' },
  'pid-file': { type: 'string' },
  output: { type: 'string', short: 'o' },
  help: { type: 'boolean', short: 'h' },
} as const;

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

runMain('tbot', async () => {
  const [cmd, ...rest] = process.argv.slice(2);
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(HELP);
    return cmd ? 0 : 2;
  }
  if (cmd === 'version' || cmd === '--version')
    return void process.stdout.write(`tbot v${VERSION} node ${process.version}\n`);
  if (cmd === 'keypair') return keypairCommand(rest);
  if (cmd !== 'start' && cmd !== 'configure')
    throw usageError(`unknown command ${JSON.stringify(cmd)} (expected start, configure, keypair or version)`);
  const { values, positionals } = parseFlags(rest, OPTIONS);
  if (values.help) return void process.stdout.write(HELP);
  const mode = startMode(cmd, positionals);
  checkModeFlags(cmd, mode, values);
  if (values.output && cmd !== 'configure') throw usageError('is for tbot configure', '--output');
  const format = (values['log-format'] ?? 'text') as LogFormat;
  if (!LOG_FORMATS.includes(format)) throw usageError(`expected ${LOG_FORMATS.join(' or ')}`, '--log-format');
  const env = process.env;
  const flags = {
    ...values,
    config: values.config ?? (env.TBOT_CONFIG_PATH || undefined),
    debug: values.debug || envBool(env.TBOT_DEBUG, 'TBOT_DEBUG'),
  };
  const file = buildTbotFile(flags, env);
  const cfg = validateTbotConfig(file, env);
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
