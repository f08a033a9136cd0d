import { DEFAULT_DATA_DIR } from '../../api/local.js';
import { DEFAULT_LISTEN } from '../../auth/config.js';
import {
  booleanFlag as bool,
  completionCommand,
  systemdFlags,
  stringFlag as str,
  type FlagDef,
  type ProgramDef,
} from './table.js';

/** Every flag mwi knows. */
const FLAGS = {
  config: str(
    'FILE',
    'mwi.yaml (cluster_name, data_dir, listen, storage, tls_sans, https_keypairs, https_keypairs_reload_interval, ' +
      'oidc, kubernetes, connection_limits, audit, workload_identity); flags override it',
    { short: 'c', complete: 'file' },
  ),
  'data-dir': str('DIR', 'data directory: storage, audit log, local admin identity', {
    default: DEFAULT_DATA_DIR,
    complete: 'dir',
  }),
  listen: str('HOST:PORT', 'address for the join, renew and admin APIs (port 0 picks a free one)', {
    default: DEFAULT_LISTEN,
  }),
  'cluster-name': str('NAME', 'cluster name, fixed at first start', { default: 'the host name' }),
  storage: str(
    'URL',
    'sqlite (DATA_DIR/mwi.db), sqlite:///PATH, memory://, or postgres://USER@HOST:PORT/DB?sslmode=verify-full&... ' +
      "(libpq's URL form and PG* variables; replicas share one database)",
    { default: 'sqlite' },
  ),
  from: str('URL', 'the storage to copy (a URL as for --storage)', { default: 'sqlite' }),
  to: str('URL', 'the storage to copy into, e.g. postgres://mwi@db.example.com/mwi?sslmode=verify-full'),
  workers: str(
    'N',
    'Auth Service processes sharing the port and the storage ("auto": one per core; not with memory://)',
    {
      default: '1',
    },
  ),
  'tls-cert': str(
    'FILE',
    'certificate chain for the public address (PEM: server certificate first, then intermediates), e.g. from a ' +
      'public CA, for clients that check it with their trust store (tbot --proxy-server); with --tls-key, both ' +
      'replace mwi.yaml https_keypairs',
    { complete: 'file' },
  ),
  'tls-key': str('FILE', 'the private key of --tls-cert (PEM, unencrypted)', { complete: 'file' }),
  'diag-addr': str(
    'HOST:PORT',
    "serve /livez, /readyz and /metrics (Prometheus) there, over plain HTTP (Teleport's flag); with --workers, " +
      "the first process sums its workers' metrics",
  ),
  'log-format': str(
    'FORMAT',
    'log lines as text, or json (one object per line, with request_id); $MWI_LOG_LEVEL (debug, info, warn, ' +
      'error) sets the level',
    { choices: ['text', 'json'], default: 'text' },
  ),
  ...systemdFlags('mwi'),
  help: bool('show help for the command', { short: 'h' }),
  version: bool('print the version'),
} as const satisfies Record<string, FlagDef>;

/** mwi's commands: what `mwi --help`, `mwi start --help`, parsing and completion are made from. */
export const MWI = {
  name: 'mwi',
  summary: 'The mwi Auth Service: CAs, roles, bots, join tokens, bot instances, locks and the audit log.',
  flags: FLAGS,
  globals: ['help', 'version'],
  commands: [
    {
      path: 'start',
      summary: 'run the Auth Service',
      details:
        'Prints its address and the CA pin tbot needs for a first join. Signals: SIGHUP reads the --tls-cert/' +
        '--tls-key (https_keypairs) files again; SIGINT/SIGTERM stop.',
      flags: [
        'config',
        'data-dir',
        'listen',
        'cluster-name',
        'storage',
        'workers',
        'tls-cert',
        'tls-key',
        'diag-addr',
        'log-format',
      ],
      examples: ['mwi start --data-dir /var/lib/mwi --listen 0.0.0.0:3025', 'mwi start -c /etc/mwi.yaml'],
    },
    { path: 'install', summary: 'install the Auth Service as a service' },
    {
      path: 'install systemd',
      usage: 'install systemd -c FILE [--write [--force]] [--name NAME] [--user U] [--group G]',
      summary: 'print (or --write) a hardened systemd unit that runs mwi start -c FILE',
      details:
        'The unit runs this mwi (the single binary, or node and its script), as --user/--group. It may ' +
        "write only FILE's data_dir (and the directory of a sqlite:///PATH storage): create it, owned by that " +
        'user, first. The default listen port ' +
        '(3025) needs no privilege; the unit grants none. An existing unit with the same content is left as it is.',
      flags: [
        ['config', { description: 'the mwi.yaml the service starts with (required)' }],
        'name',
        'user',
        'group',
        'systemd-directory',
        'write',
        'force',
      ],
      examples: [
        'mwi install systemd -c /etc/mwi.yaml',
        'mwi install systemd -c /etc/mwi.yaml --write && systemctl daemon-reload && systemctl enable --now mwi',
      ],
    },
    { path: 'backend', summary: "the storage itself (Teleport's teleport backend)" },
    {
      path: 'backend clone',
      usage: 'backend clone [-c FILE] [--to URL] [--from URL] [--force] [--data-dir DIR]',
      summary: 'copy every item of one storage into another: SQLite into PostgreSQL before adding replicas',
      details:
        "Teleport's teleport backend clone, with the two storages as flags instead of a clone.yaml. With -c, " +
        'mwi.yaml as mwi start reads it: --to defaults to its storage (the same URL, client certificate included) ' +
        "and --from to its data_dir's mwi.db. Stop mwi start first: writes made during the copy may be missed. " +
        'Expired items are left behind. The copy is one transaction (all of it or nothing), written 1000 rows per ' +
        'statement. The audit log files (DATA_DIR/audit) are not copied: keep them as the record before the move.',
      flags: [
        ['config', { description: "mwi.yaml: --to is its storage, --from its data dir's SQLite" }],
        'from',
        'to',
        [
          'force',
          {
            description:
              'replace what the destination holds (printed first): it goes back to the source, tokens spent since ' +
              'included (it must be empty otherwise)',
          },
        ],
        'data-dir',
      ],
      examples: [
        'mwi backend clone -c /etc/mwi/mwi.yaml',
        'mwi backend clone --from sqlite:///var/lib/mwi/mwi.db --to "postgres://mwi@db.example.com/mwi?sslmode=verify-full"',
      ],
    },
    {
      path: 'backend migrate',
      usage: 'backend migrate (--storage URL | -c FILE)',
      summary: "bring a PostgreSQL database's schema up to this mwi's, and exit",
      details:
        'What mwi start does first, alone: for replicas whose role may not create tables, the owner of the ' +
        'database runs it before the first start and at each upgrade. Replicas starting meanwhile wait for it ' +
        '(an advisory lock).',
      flags: [
        ['config', { description: 'mwi.yaml: the database is its storage' }],
        [
          'storage',
          { description: 'the database: postgres://USER@HOST:PORT/DB?... as for mwi start', default: undefined },
        ],
      ],
      examples: ['mwi backend migrate --storage "postgres://mwi@db.example.com/mwi?sslmode=verify-full"'],
    },
    { path: 'version', summary: 'print the version (also --version)' },
    completionCommand('mwi'),
  ],
} as const satisfies ProgramDef<typeof FLAGS>;
