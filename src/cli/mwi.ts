#!/usr/bin/env node
import { DEFAULT_DATA_DIR, DEFAULT_LISTEN, loadAuthConfig } from '../auth/config.js';
import { AuthServer } from '../auth/server.js';
import { VERSION } from '../version.js';
import { parseFlags, runMain, usageError } from './common.js';

const HELP = `Usage: mwi <command> [flags]

Commands:
  start     run the Auth Service
  version   print the version

mwi start flags:
  -c, --config FILE        mwi.yaml (cluster_name, data_dir, listen, storage, tls_sans, oidc, kubernetes)
      --data-dir DIR       data directory (default ${DEFAULT_DATA_DIR})
      --listen HOST:PORT   address for the join, renew and admin APIs (default ${DEFAULT_LISTEN})
      --cluster-name NAME  cluster name, fixed at first start (default: host name)
      --storage URL        sqlite (default, DATA_DIR/mwi.db), sqlite:///PATH or memory://
`;

runMain('mwi', async () => {
  const [cmd, ...rest] = process.argv.slice(2);
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(HELP);
    return cmd ? 0 : 2;
  }
  if (cmd === 'version') {
    process.stdout.write(`mwi v${VERSION} node ${process.version}\n`);
    return;
  }
  if (cmd !== 'start') throw usageError(`unknown command ${JSON.stringify(cmd)} (expected start or version)`);
  const { values, positionals } = parseFlags(rest, {
    config: { type: 'string', short: 'c' },
    'data-dir': { type: 'string' },
    listen: { type: 'string' },
    'cluster-name': { type: 'string' },
    storage: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  if (positionals.length > 0) throw usageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  const cfg = loadAuthConfig(values.config, values);
  const server = await AuthServer.start({ dataDir: cfg.dataDir, listen: cfg.listen, clusterName: cfg.clusterName, storage: cfg.storage, tlsSans: cfg.tlsSans, oidc: cfg.oidc, kubernetes: cfg.kubernetes });
  process.stdout.write(`mwi auth service ${server.clusterName} listening on ${server.address}\nCA pin: ${server.caPin}\n`);
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      process.stdout.write(`received ${sig}, shutting down\n`);
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await server.close();
});
