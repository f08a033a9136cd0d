#!/usr/bin/env node
import { stringify } from 'yaml';
import { buildTbotFile, validateTbotConfig } from '../agent/config.js';
import { startBot } from '../agent/bot.js';
import { createLogger } from '../util/log.js';
import { installProcessGuards } from '../util/process-guard.js';
import { VERSION } from '../version.js';
import { parseFlags, runMain, usageError } from './common.js';
import { keypairCommand } from './tbot-keypair.js';

const HELP = `Usage: tbot <command> [flags]

Commands:
  start       join the cluster and keep credentials fresh (daemon; --oneshot to run once)
  configure   print the tbot.yaml that the flags describe
  keypair create --storage DIR [--static] [--overwrite]
              make the keypair for bound_keypair joining and print its public key
              (--static: print a private key for CI secrets instead; nothing is written)
  version     print the version

Flags (start, configure):
  -c, --config FILE           tbot.yaml (version: v2); flags below override it
      --auth-server ADDR      Auth Service address, HOST:PORT (comma-separated for several)
      --proxy-server ADDR     its public address instead, HOST:PORT ($TELEPORT_PROXY): without --ca-pin, its
                              certificate is verified with the system trust store (+ $NODE_EXTRA_CA_CERTS)
      --join-method METHOD    join method (default token)
      --token TOKEN           join token, or an absolute path to a file holding it ($TELEPORT_BOT_TOKEN)
      --ca-pin PIN            sha256:<hex> of the Auth Service CA (repeatable); printed by mwi start
      --data-dir DIR          storage for the bot's internal identity (default: memory)
      --destination-dir DIR   write an identity output (SSH + TLS credentials) here
      --certificate-ttl D     credential lifetime (default 1h, at most 24h)
      --renewal-interval D    how often to renew (default 20m, less than the TTL)
      --oneshot               join, write outputs once, exit
      --insecure              trust the Auth Service without a CA pin (unsafe)
      --registration-secret S bound_keypair registration secret (or a file path; or $TBOT_REGISTRATION_SECRET)
      --diag-addr HOST:PORT   serve /livez, /readyz, /readyz/<service>, /metrics (daemon)
      --debug                 debug logging

Signals: SIGHUP or SIGUSR1 renew everything now; SIGINT/SIGTERM stop.
`;

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  'auth-server': { type: 'string' },
  'proxy-server': { type: 'string' },
  'join-method': { type: 'string' },
  token: { type: 'string' },
  'ca-pin': { type: 'string', multiple: true },
  'data-dir': { type: 'string' },
  'destination-dir': { type: 'string' },
  'certificate-ttl': { type: 'string' },
  'renewal-interval': { type: 'string' },
  oneshot: { type: 'boolean' },
  insecure: { type: 'boolean' },
  'registration-secret': { type: 'string' },
  'diag-addr': { type: 'string' },
  debug: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

runMain('tbot', async () => {
  const [cmd, ...rest] = process.argv.slice(2);
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(HELP);
    return cmd ? 0 : 2;
  }
  if (cmd === 'version') return void process.stdout.write(`tbot v${VERSION} node ${process.version}\n`);
  if (cmd === 'keypair') return keypairCommand(rest);
  if (cmd !== 'start' && cmd !== 'configure')
    throw usageError(`unknown command ${JSON.stringify(cmd)} (expected start, configure, keypair or version)`);
  const { values, positionals } = parseFlags(rest, OPTIONS);
  if (values.help) return void process.stdout.write(HELP);
  if (positionals.length > 0)
    throw usageError(`unexpected argument ${JSON.stringify(positionals[0])} (see tbot --help)`);
  const file = buildTbotFile(values);
  const cfg = validateTbotConfig(file);
  if (cmd === 'configure') {
    process.stdout.write(stringify(file));
    return;
  }
  const log = createLogger('tbot', values.debug ? 'debug' : 'info');
  // the daemon serves --diag-addr and keeps renewing: a stray rejection is logged, not fatal
  if (!cfg.oneshot) installProcessGuards(log);
  if (cfg.insecure) log.warn('--insecure: the Auth Service will not be authenticated on first contact');
  const abort = new AbortController();
  const onStop = (sig: string) => {
    log.info(`received ${sig}, stopping`);
    abort.abort();
  };
  process.once('SIGINT', () => onStop('SIGINT'));
  process.once('SIGTERM', () => onStop('SIGTERM'));
  const bot = await startBot(cfg, log, abort.signal);
  const renew = () => {
    log.info('renewing everything now (signal)');
    bot.renewNow();
  };
  process.on('SIGHUP', renew);
  process.on('SIGUSR1', renew);
  await bot.done;
  if (cfg.oneshot) log.info('one-shot run complete');
});
