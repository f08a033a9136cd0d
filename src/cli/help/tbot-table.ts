import { DEFAULT_CREDENTIAL_TTL, DEFAULT_RENEWAL_INTERVAL, DEFAULT_STORAGE_DIR } from '../../agent/config.js';
import { joinMethodNames } from '../../join/catalog.js';
import { joinMethodProblem } from './checks.js';
import {
  booleanFlag,
  completionCommand,
  systemdFlags,
  stringFlag,
  type FlagDef,
  type FlagUse,
  type ProgramDef,
} from './table.js';

const str = stringFlag;
const bool = booleanFlag;

/** Every flag tbot knows; `keypair create` restates the ones it shares with start. */
const FLAGS = {
  config: str('FILE', 'tbot.yaml (version: v2); the flags below override it', {
    short: 'c',
    env: 'TBOT_CONFIG_PATH',
    complete: 'file',
  }),
  'auth-server': str(
    'ADDR',
    'Auth Service address, HOST:PORT (comma-separated for several); the variable counts when neither a flag ' +
      'nor the file gives one',
    { env: 'TELEPORT_AUTH_SERVER' },
  ),
  'proxy-server': str(
    'ADDR',
    'its public address instead, HOST:PORT: without --ca-pin, its certificate is verified with the system trust ' +
      'store (+ $NODE_EXTRA_CA_CERTS)',
    { env: 'TELEPORT_PROXY' },
  ),
  'join-method': str('METHOD', 'join method', {
    values: joinMethodNames(),
    check: joinMethodProblem,
    default: 'token',
  }),
  token: str('TOKEN', 'join token, or an absolute path to a file holding it (a file keeps it out of ps)', {
    env: 'TELEPORT_BOT_TOKEN',
  }),
  'ca-pin': str('PIN', 'sha256:<hex> of the Auth Service CA, printed by mwi start and tctl status', {
    multiple: true,
  }),
  storage: str('URI', "storage for the bot's internal identity", {
    default: `${DEFAULT_STORAGE_DIR}; memory:// with --oneshot`,
  }),
  'data-dir': str('URI', 'the legacy form of --storage', { complete: 'dir' }),
  destination: str('URI', '(identity mode) where the output is written (required)', { complete: 'dir' }),
  'destination-dir': str('DIR', '(legacy form) write an identity output here', { complete: 'dir' }),
  'reader-user': str('U', "a user who may read the output's files (POSIX ACLs: readers)", { multiple: true }),
  'reader-group': str('G', 'a group who may read them', { multiple: true }),
  cluster: str('NAME', "the output's cluster (mwi has one: the bot's own)"),
  'allow-reissue': bool("accepted for Teleport's command lines; no effect in mwi"),
  fips: bool('refused: mwi has no FIPS build', { teleport: true }),
  'certificate-ttl': str('D', 'credential lifetime (at most 24h)', { duration: true, default: DEFAULT_CREDENTIAL_TTL }),
  'renewal-interval': str('D', 'how often to renew (less than the TTL)', {
    duration: true,
    default: DEFAULT_RENEWAL_INTERVAL,
  }),
  oneshot: bool('join, write outputs once, exit'),
  insecure: bool('trust the Auth Service without a CA pin (unsafe)'),
  'registration-secret': str('S', 'bound_keypair registration secret, or an absolute path to a file holding it', {
    env: 'TBOT_REGISTRATION_SECRET',
  }),
  'registration-secret-path': str('FILE', 'the same, read from FILE (not with --registration-secret)', {
    complete: 'file',
  }),
  'join-uri': str(
    'URI',
    'tbot+proxy+METHOD://TOKEN[:PARAM]@HOST:PORT (or tbot+auth+...): address, join method, token and its ' +
      'parameter in one, as Teleport prints it (tbot.yaml join_uri)',
  ),
  'diag-addr': str('HOST:PORT', 'serve /livez, /readyz, /readyz/<service>, /metrics (daemon)'),
  debug: bool('debug logging (tbot.yaml debug: true)', { short: 'd', env: 'TBOT_DEBUG' }),
  'log-format': str('FORMAT', 'json: one JSON object per log line', { choices: ['text', 'json'], default: 'text' }),
  'pid-file': str('FILE', "(start) write tbot's process id to FILE; removed when tbot exits", { complete: 'file' }),
  output: str('FILE', '(configure) write the tbot.yaml to FILE (0600, atomically) instead of stdout', {
    short: 'o',
    complete: 'file',
  }),
  static: bool('a key for CI secret stores instead: printed (PEM), written to no storage'),
  'static-key-path': str(
    'FILE',
    '(implies --static) write the private key to FILE (0600) instead of printing it; tbot reads it as ' +
      'onboarding.bound_keypair.static_private_key_path',
    { complete: 'file' },
  ),
  overwrite: bool("replace an existing key; without it the existing key's public key is printed"),
  format: str('FORMAT', 'json: {"public_key": ..., "private_key": base64 PEM (--static)}', {
    choices: ['text', 'json'],
    default: 'text',
  }),
  ...systemdFlags('tbot'),
  help: bool('show help for the command', { short: 'h' }),
  version: bool('print the version'),
} as const satisfies Record<string, FlagDef>;

type Flag = keyof typeof FLAGS;

const START_FLAGS: readonly FlagUse<Flag>[] = [
  'config',
  'auth-server',
  'proxy-server',
  'join-method',
  'token',
  'ca-pin',
  'storage',
  'data-dir',
  'destination',
  'destination-dir',
  'reader-user',
  'reader-group',
  'cluster',
  'allow-reissue',
  'certificate-ttl',
  'renewal-interval',
  'oneshot',
  'insecure',
  'registration-secret',
  'registration-secret-path',
  [
    'static-key-path',
    {
      description:
        'bound_keypair static private key (PEM) from FILE (onboarding.bound_keypair.static_private_key_path)',
      env: 'TBOT_BOUND_KEYPAIR_STATIC_KEY',
    },
  ],
  'join-uri',
  'diag-addr',
  'debug',
  'log-format',
  'pid-file',
  'fips',
];

const MODES =
  'MODE: none or legacy (--data-dir is the storage, --destination-dir an identity output), or identity ' +
  "(also id, ssh: one identity output at --destination URI). Teleport's other modes (database, kubernetes, " +
  'application, ...) are not modes of mwi (its ssh_host, database and workload-identity-x509/-jwt outputs ' +
  'and the workload-identity-api service are written in tbot.yaml, -c). ' +
  'URIs: file:///PATH or a path (a directory), memory://, or ' +
  "kubernetes-secret://NAMESPACE/NAME (a Secret; kubernetes-secret:///NAME: the pod's namespace).";

const PIN = 'sha256:<hex from mwi start>';

/** tbot's commands: what `tbot --help`, `tbot COMMAND --help`, parsing and completion are made from. */
export const TBOT = {
  name: 'tbot',
  summary: 'The mwi agent: joins as a bot and keeps short-lived SSH and X.509 credentials fresh in its outputs.',
  flags: FLAGS,
  globals: ['help', 'version'],
  featured: ['start', 'configure'],
  commands: [
    {
      path: 'start',
      args: '[MODE]',
      summary: 'join the cluster and keep credentials fresh (a daemon; --oneshot to run once)',
      details: `${MODES} Signals: SIGHUP or SIGUSR1 renew everything now; SIGINT/SIGTERM stop.`,
      flags: START_FLAGS,
      joinMethods: true,
      complete: ['identity', 'legacy', 'id', 'ssh'],
      examples: [
        `tbot start identity --auth-server auth.example.com:3025 --token /run/secrets/tbot-token --ca-pin ${PIN} ` +
          '--storage /var/lib/tbot --destination /opt/machine-id',
        'tbot start -c /etc/tbot.yaml',
      ],
    },
    {
      path: 'configure',
      args: '[MODE]',
      summary: 'print the tbot.yaml that the flags describe (-o FILE writes it)',
      details: MODES,
      flags: [...START_FLAGS, 'output'],
      joinMethods: true,
      complete: ['identity', 'legacy', 'id', 'ssh'],
      examples: [
        `tbot configure identity --auth-server auth.example.com:3025 --ca-pin ${PIN} --destination /opt/machine-id ` +
          '-o /etc/tbot.yaml',
      ],
    },
    { path: 'keypair', summary: 'keypairs for bound_keypair joining' },
    {
      path: 'keypair create',
      usage: 'keypair create (--storage URI | --static [--static-key-path FILE]) [--overwrite] [--format text|json]',
      summary: 'make the keypair for bound_keypair joining; print its public key',
      details:
        "The public key (SSH authorized_keys form) goes in a token's spec.bound_keypair.onboarding.initial_public_key.",
      flags: [
        [
          'storage',
          {
            description: "tbot's storage (file:///PATH or a path): the keypair is kept there (0600) for its first join",
            default: undefined,
            complete: 'dir',
          },
        ],
        'static',
        'static-key-path',
        'overwrite',
        'format',
        [
          'proxy-server',
          { description: "accepted for Teleport's command lines; mwi's keys are Ed25519, so it needs no address" },
        ],
      ],
      examples: ['tbot keypair create --storage /var/lib/tbot', 'tbot keypair create --static-key-path ci-key.pem'],
    },
    { path: 'install', summary: 'install tbot as a service' },
    {
      path: 'install systemd',
      usage: 'install systemd -c FILE [--write [--force]] [--name NAME] [--user U] [--group G]',
      summary: 'print (or --write) a hardened systemd unit that runs tbot start -c FILE',
      details:
        'The unit runs this tbot (the single binary, or node and its script), as --user/--group ' +
        "(Teleport's default is teleport; mwi's is tbot: a user of its own, which mwi does not share with " +
        'another service). It may write only the storage ' +
        "directory and the outputs' directories of FILE (and the --pid-file's directory): create them, owned by " +
        'that user, first. An existing unit with the same content is left as it is.',
      flags: [
        ['config', { description: 'the tbot.yaml the service starts with (required)' }],
        'name',
        'user',
        'group',
        'systemd-directory',
        ['pid-file', { description: 'the service writes its process id there (tbot start --pid-file)' }],
        'write',
        'force',
      ],
      examples: [
        'tbot install systemd -c /etc/tbot.yaml',
        'tbot install systemd -c /etc/tbot.yaml --write && systemctl daemon-reload && systemctl enable --now tbot',
      ],
    },
    { path: 'version', summary: 'print the version (also --version)' },
    completionCommand('tbot'),
  ],
  footer:
    'Modes (start, configure):\n' +
    '  (none), legacy      the legacy form: --data-dir (storage) and --destination-dir (an identity output)\n' +
    '  identity, id, ssh   one identity output (SSH + TLS credentials): --destination URI [--storage URI]\n' +
    "  Teleport's other modes (database, kubernetes, application, ...) are not modes of mwi; its ssh_host,\n" +
    '  database and workload-identity-x509/-jwt outputs and the workload-identity-api service are written in\n' +
    '  tbot.yaml (-c FILE; docs/outputs.md).\n\n' +
    'URIs (--storage, --data-dir, --destination): file:///PATH or a path (a directory), memory://, or\n' +
    "  kubernetes-secret://NAMESPACE/NAME (a Kubernetes Secret; kubernetes-secret:///NAME: the pod's namespace)\n\n" +
    'Signals: SIGHUP or SIGUSR1 renew everything now; SIGINT/SIGTERM stop.\n',
} as const satisfies ProgramDef<typeof FLAGS>;
