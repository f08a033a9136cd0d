import { AUDIT_EVENT_TYPES } from '../../api/admin.js';
import { DEFAULT_DATA_DIR } from '../../api/local.js';
import { joinMethodNames } from '../../join/catalog.js';
import { joinMethodProblem } from './checks.js';
import { completionCommand, stringFlag, type FlagDef, type ProgramDef } from './table.js';

const str = stringFlag;
const refused = (value: string) =>
  ({ type: 'string', value, description: "Teleport's lock target", teleport: true }) as const;

/** Every flag tctl knows (one meaning of its type per name); commands restate what differs. */
const FLAGS = {
  'data-dir': str('DIR', "the local Auth Service's data dir: its address and admin identity", {
    default: DEFAULT_DATA_DIR,
    env: 'MWI_DATA_DIR',
    complete: 'dir',
  }),
  'auth-server': str('ADDR', 'Auth Service address, HOST:PORT (with --identity)', { env: 'TELEPORT_AUTH_SERVER' }),
  identity: str('FILE', 'admin identity file (with --auth-server)', {
    short: 'i',
    env: 'TELEPORT_IDENTITY_FILE',
    complete: 'file',
  }),
  help: { type: 'boolean', short: 'h', description: 'show help for the command' },
  version: { type: 'boolean', description: 'print the version' },
  format: str('FMT', 'output format', { choices: ['text', 'json'], default: 'text' }),
  force: { type: 'boolean', short: 'f', description: 'replace resources that exist (as in Teleport)' },
  type: str('TYPE', 'type'),
  limit: str('N', 'how many events at most', { count: true, default: '50' }),
  host: str('NAMES', 'host names (comma-separated): the certificate principals'),
  'public-key': str('FILE', "the host's OpenSSH public key file", { complete: 'file' }),
  ttl: str('D', 'lifetime', { duration: true }),
  out: str('FILE', 'write to FILE instead of stdout', { complete: 'file' }),
  roles: str('R1,R2', "the bot's roles (comma-separated; required)"),
  logins: str('L1,L2', "the bot's logins trait: SSH logins for {{internal.logins}} in its roles"),
  'set-roles': str('R1,R2', 'replace the roles'),
  'add-roles': str('R1,R2', 'add roles'),
  'set-logins': str('L1,L2', 'replace the logins'),
  'add-logins': str('L1,L2', 'add logins'),
  'bot-name': str('NAME', 'the bot the token is for (required)'),
  'join-method': str('METHOD', 'join method', {
    values: joinMethodNames(),
    check: joinMethodProblem,
    default: 'token',
  }),
  spec: str('FILE', "YAML or JSON with the method's spec fields (e.g. its allow rules)", { complete: 'file' }),
  bot: str('NAME', 'lock this bot (every instance)'),
  'bot-instance': str('ID', 'lock this bot instance (its UUID: tctl bots instances ls)'),
  message: str('TEXT', 'why: shown to the bot and in the audit log'),
  reason: str('TEXT', 'the same as --message'),
  'with-secrets': {
    type: 'boolean',
    description: "Teleport's; refused: mwi keeps join secrets only as hashes",
    teleport: true,
  },
  user: str('bot-NAME|NAME', "lock bot NAME (its user's name in Teleport), or an operator identity's user"),
  'bot-instance-id': str('ID', 'lock one bot instance'),
  'join-token': str('NAME', 'lock a join token (its id, as tokens ls shows it; a token secret is turned into its id)'),
  role: refused('ROLE'),
  login: refused('LOGIN'),
  'mfa-device': refused('ID'),
  'windows-desktop': refused('NAME'),
  'access-request': refused('ID'),
  device: refused('ID'),
  'server-id': refused('ID'),
  expires: str('RFC3339', 'when the lock ends, e.g. 2030-01-02T15:04:05Z (not with --ttl)'),
  token: str('NAME', 'an existing join token of the bot'),
  'max-session-ttl': str('D', "cap on the bot's certificate lifetimes (spec.max_session_ttl)", { duration: true }),
  value: str('V', 'the token: a secret you choose (16+ characters for method token; stored only as a hash)'),
  labels: str('k=v,...', "the token's metadata.labels"),
  'id-token': str('FILE', 'the identity token to test (a file, or - for stdin: never an argument)', {
    complete: 'file',
  }),
  'from-audit': str('UID', "a refused join's audit uid (tctl audit ls --failures): test its recorded claims"),
  failures: { type: 'boolean', description: 'refusals only, with their reasons and uids' },
  admin: { type: 'boolean', description: "an operator identity (mwi's own flag; Teleport signs user certificates)" },
  'grace-period': { type: 'string', value: 'D', description: "Teleport's rotation grace period", teleport: true },
  manual: { type: 'boolean', description: "Teleport's manual (phased) rotation", teleport: true },
  phase: { type: 'string', value: 'PHASE', description: "Teleport's rotation phase", teleport: true },
} as const satisfies Record<string, FlagDef>;

/** The CAs `tctl ca export` exports, in the order its error lists them. */
export const CA_TYPES = ['tls-user', 'tls-host', 'ssh-user', 'ssh-host'] as const;

/** Teleport's lock targets that have no counterpart in mwi, which locks bots and operators: each refused. */
export const TELEPORT_LOCK_TARGETS = [
  'role',
  'login',
  'mfa-device',
  'windows-desktop',
  'access-request',
  'device',
  'server-id',
] as const;

const FORMAT_JSON = ['format', {}] as const;
const LOCK_TIME = [
  ['expires', {}],
  ['ttl', { description: 'how long the lock lasts, from now (not with --expires; default: until removed)' }],
] as const;

/** tctl's commands: what `tctl --help`, `tctl COMMAND --help`, parsing and completion are made from. */
export const TCTL = {
  name: 'tctl',
  summary: 'The admin CLI of an mwi Auth Service: bots, join tokens, resources, locks, CAs, audit.',
  flags: FLAGS,
  globals: ['data-dir', 'auth-server', 'identity', 'help', 'version'],
  commands: [
    {
      path: 'status',
      summary: 'cluster name, version, CA pin and the SPIFFE trust domain (and JWT issuer)',
      flags: [FORMAT_JSON],
      details:
        'From another machine: --auth-server ADDR -i FILE, with an operator identity made on the Auth Service ' +
        'host by tctl auth sign --admin --user NAME --out FILE (docs/remote-admin.md).',
      examples: ['tctl status', 'tctl --auth-server auth.example.com:3025 -i alice.json status'],
    },
    { path: 'bots', aliases: ['bot'], summary: 'bots: the machine identities tbot joins as' },
    {
      path: 'bots add',
      args: 'NAME',
      usage: 'bots add NAME --roles R1,R2 [--logins L1,L2] [--ttl 1h] [--max-session-ttl D] [--token NAME]',
      summary: 'create a bot and a single-use join token (or bind an existing token with --token)',
      details:
        'Prints the token, the CA pin and the tbot command to start; the token goes into a 0600 file, ' +
        'never on the command line (ps shows arguments to every user). With --token, no token is made: ' +
        'the existing one must name this bot (a platform method token, made with tctl create or tokens add).',
      flags: [
        'roles',
        'logins',
        ['ttl', { description: "the join token's lifetime", default: '1h' }],
        'max-session-ttl',
        ['token', { description: 'bind this existing join token (its spec.bot_name must be NAME) instead' }],
        FORMAT_JSON,
      ],
      joinMethods: true,
      examples: ['tctl bots add robot --roles deployer --logins deploy'],
    },
    {
      path: 'bots ls',
      aliases: ['list'],
      summary: 'list bots, with their roles, logins and whether a lock holds them',
      flags: [FORMAT_JSON],
      examples: ['tctl bots ls'],
    },
    {
      path: 'bots rm',
      args: 'NAME',
      summary: 'delete a bot, its instances and its join tokens',
      examples: ['tctl bots rm robot'],
    },
    {
      path: 'bots update',
      args: 'NAME',
      usage: 'bots update NAME [--set-roles R] [--add-roles R] [--set-logins L] [--add-logins L]',
      summary: "change a bot's roles and logins",
      flags: ['set-roles', 'add-roles', 'set-logins', 'add-logins'],
      examples: ['tctl bots update robot --add-logins ci'],
    },
    { path: 'bots instances', aliases: ['instance'], summary: 'bot instances: one per joined tbot' },
    {
      path: 'bots instances ls',
      aliases: ['list'],
      args: '[BOT]',
      summary: 'joined tbot instances (of BOT): join method, generation, heartbeat, expiry, lock',
      flags: [FORMAT_JSON],
      examples: ['tctl bots instances ls robot'],
    },
    {
      path: 'bots instances show',
      aliases: ['get', 'describe'],
      args: 'BOT/ID',
      summary: 'one instance: its authentications, recoveries, latest heartbeat',
      flags: [['format', { description: 'output format (json: the whole record)' }]],
      examples: ['tctl bots instances show robot/5f1c4d2e-0000-4000-8000-000000000000'],
    },
    {
      path: 'bots instances add',
      aliases: ['join'],
      args: 'BOT',
      usage: 'bots instances add BOT [--token NAME] [--ttl 1h]',
      summary: 'a new single-use join token for an existing bot (--token: how to join with an existing one)',
      flags: [
        ['token', { description: "print how to join with this existing token of the bot's" }],
        ['ttl', { description: "the new join token's lifetime", default: '1h' }],
        FORMAT_JSON,
      ],
      examples: ['tctl bots instances add robot'],
    },
    { path: 'tokens', summary: 'join tokens' },
    {
      path: 'tokens add',
      usage:
        'tokens add --type=bot --bot-name NAME [--join-method token] [--ttl 30m] [--value V] [--labels k=v,...] ' +
        '[--spec FILE]',
      summary: 'a new join token for a bot',
      details:
        'For join method token, a fresh 128-bit secret is shown once (mwi keeps only its hash): give it to ' +
        'tbot as a file path or $TELEPORT_BOT_TOKEN, not on the command line. Platform methods take their ' +
        'allow rules from --spec (or write the whole token with tctl create).',
      flags: [
        ['type', { description: 'token type: bot (the only one mwi makes; required)', values: ['bot'] }],
        'bot-name',
        'join-method',
        ['ttl', { description: "the token's lifetime (bound_keypair: the registration window)", default: '30m' }],
        'value',
        'labels',
        'spec',
        ['format', { choices: ['text', 'json', 'yaml'] }],
      ],
      joinMethods: true,
      examples: [
        'tctl tokens add --type=bot --bot-name robot',
        'tctl tokens add --type=bot --bot-name robot --join-method github --spec gh-allow.yaml',
      ],
    },
    {
      path: 'tokens ls',
      aliases: ['list'],
      summary: 'list join tokens: ids, methods, bots, expiry (never secrets)',
      flags: [['format', { choices: ['text', 'json', 'yaml'] }], 'with-secrets'],
      examples: ['tctl tokens ls'],
    },
    {
      path: 'tokens rm',
      aliases: ['del'],
      args: 'ID',
      summary: 'delete a join token, by its id (as tokens ls shows it) or its secret',
      examples: ['tctl tokens rm h-0123456789abcdef'],
    },
    {
      path: 'tokens test',
      args: 'NAME',
      usage: 'tokens test NAME (--id-token FILE | --from-audit UID) [--format json]',
      summary: "run a platform token's join checks on an identity token, each shown; creates nothing",
      details:
        'Join explain: every check the join makes (signature, issuer, audience, expiry, the platform checks) and ' +
        'every allow rule field by field, with the value the token has. --from-audit runs the rules again on the ' +
        'claims a refused join recorded. Exit 0 if the join would pass, 1 if it would be refused.',
      flags: ['id-token', 'from-audit', FORMAT_JSON],
      examples: [
        'tctl tokens test gh-deploy --id-token ./id-token.jwt',
        'tctl audit ls --failures && tctl tokens test gh-deploy --from-audit UID',
      ],
    },
    {
      path: 'create',
      args: '[FILE]',
      complete: 'file',
      usage: 'create [FILE] [-f|--force]',
      summary:
        'create roles, bots, tokens, locks, workload_identities from YAML (--- separated; no FILE or - reads stdin)',
      flags: ['force'],
      examples: ['tctl create role.yaml', 'tctl create --force resources.yaml'],
    },
    {
      path: 'get',
      args: 'RESOURCES',
      complete: ['all', 'roles', 'bots', 'tokens', 'locks', 'bot_instances', 'workload_identities'],
      summary: 'print resources: KIND[/NAME], several separated by commas, or all',
      details:
        'Kinds: roles, bots, tokens, locks, bot_instances (one instance is bot_instance/BOT/ID or ' +
        'bot_instance/ID), workload_identities. all prints what tctl create takes back.',
      flags: [['format', { choices: ['yaml', 'json', 'text'], default: 'yaml' }], 'with-secrets'],
      examples: ['tctl get role/deployer', 'tctl get roles,bots --format json', 'tctl get all > backup.yaml'],
    },
    {
      path: 'edit',
      args: 'KIND/NAME',
      summary: 'edit a resource in $EDITOR ($VISUAL, vi) and apply it as create -f',
      examples: ['tctl edit role/deployer'],
    },
    {
      path: 'rm',
      aliases: ['del'],
      args: 'KIND/NAME',
      summary: 'delete a resource',
      examples: ['tctl rm role/old'],
    },
    { path: 'bound-keypair', summary: 'bound_keypair join tokens' },
    {
      path: 'bound-keypair rotate',
      args: 'TOKEN',
      summary: 'make the bot rotate its bound keypair at its next renewal',
      examples: ['tctl bound-keypair rotate robot-bk'],
    },
    {
      path: 'lock',
      usage:
        'lock (--user bot-NAME | --bot-instance-id ID | --join-token NAME) [--message TEXT] ' +
        '[--expires RFC3339 | --ttl D]',
      summary: "lock one target (Teleport's form): joins and renewals are refused at once",
      details:
        "An mwi lock has exactly one target (Teleport's may combine several): make one lock per target. " +
        'mwi has bots, not users: --user takes bot-NAME only.',
      flags: ['user', 'bot-instance-id', 'join-token', 'message', ...LOCK_TIME, ...TELEPORT_LOCK_TARGETS],
      examples: ['tctl lock --user bot-robot --message "host compromised" --ttl 24h'],
    },
    { path: 'locks', summary: 'locks' },
    {
      path: 'locks add',
      usage: 'locks add (--bot NAME | --bot-instance ID) [--message TEXT] [--expires RFC3339 | --ttl D]',
      summary: "lock a bot or one of its instances (mwi's form)",
      flags: ['bot', 'bot-instance', 'message', 'reason', ...LOCK_TIME],
      examples: ['tctl locks add --bot robot --message "host compromised"'],
    },
    {
      path: 'locks ls',
      aliases: ['list'],
      summary: 'list locks: target, message, expiry',
      flags: [FORMAT_JSON],
      examples: ['tctl locks ls'],
    },
    {
      path: 'locks rm',
      aliases: ['del'],
      args: 'NAME',
      summary: 'remove a lock',
      examples: ['tctl locks rm 0b6f3e2a-9c1d-4e8f-a7b6-5d4c3b2a1f0e'],
    },
    { path: 'ca', summary: 'certificate authorities' },
    {
      path: 'ca export',
      usage: 'ca export --type ssh-user|ssh-host|tls-user|tls-host',
      summary: "a CA's public part: sshd's TrustedUserCAKeys line, a known_hosts line, or PEM",
      flags: [['type', { description: 'which CA (required)', values: CA_TYPES }]],
      examples: ['tctl ca export --type ssh-user > /etc/ssh/mwi_user_ca.pub'],
    },
    { path: 'auth', summary: "CAs and certificates, in Teleport's terms" },
    {
      path: 'auth export',
      usage: 'auth export --type user|host|openssh|tls-user|tls-host|db-client|db|spiffe|jwt',
      summary: "every CA's public part, with Teleport's type names: ca export's four, and db-client, db, spiffe, jwt",
      flags: [
        [
          'type',
          {
            description:
              'which CA (required): user is an authorized_keys cert-authority line, openssh the key alone; ' +
              'spiffe the SPIFFE CA bundle (PEM), jwt the JWT-SVID keys (JWKS)',
            values: [
              'user',
              'host',
              'openssh',
              'tls-user',
              'tls-host',
              'ssh-user',
              'ssh-host',
              'db-client',
              'db',
              'spiffe',
              'tls-spiffe',
              'jwt',
            ],
          },
        ],
      ],
      examples: ['tctl auth export --type openssh', 'tctl auth export --type spiffe > spiffe-bundle.pem'],
    },
    {
      path: 'auth rotate',
      usage: 'auth rotate --type spiffe|jwt',
      summary: 'rotate the SPIFFE CA or the JWT-SVID keys: the new one signs at once, the old stays trusted 24h1m',
      details:
        "mwi rotates in one step (Teleport's rotation has phases): the new CA or keys sign every SVID from now on; " +
        'the old ones stay in the trust bundle and the JWKS for 24h1m, the longest an SVID they signed can live, ' +
        "then drop out. tbot's outputs and the Workload API see the bundle's revision change and fetch new SVIDs.",
      flags: [
        [
          'type',
          {
            description: 'which (required): spiffe (the X.509 CA) or jwt (the JWT-SVID keys)',
            values: ['spiffe', 'jwt'],
          },
        ],
        'grace-period',
        'manual',
        'phase',
      ],
      examples: ['tctl auth rotate --type spiffe', 'tctl auth rotate --type jwt'],
    },
    {
      path: 'auth sign',
      usage: 'auth sign (--host NAMES [--public-key FILE | --format db] | --admin --user NAME) [--ttl D] [--out F]',
      summary:
        'an OpenSSH host certificate, a database server certificate (--format db) or an operator identity (--admin)',
      details:
        "With --admin (mwi's own): an identity file for operator NAME, for tctl --auth-server ADDR -i FILE on " +
        'another machine; at most 24h; revocable with tctl lock --user NAME; run on the Auth Service host ' +
        '(docs/remote-admin.md). --host NAMES are host names or IP addresses (no *, ? or ! patterns); both ' +
        'forms need the local admin identity, not an operator identity. With --format db: a PostgreSQL server ' +
        'certificate for --host NAMES (DNS names and IP addresses; the first is the CN) from the db CA, which ' +
        "the database output's tls.cas holds: --out PREFIX writes PREFIX.crt, PREFIX.key (new key, 0600) and " +
        'PREFIX.cas (the db-client CA, for ssl_ca_file); default lifetime 2190h, at most 8760h.',
      flags: [
        'host',
        'public-key',
        [
          'ttl',
          {
            description:
              "the certificate's lifetime (host: default 720h; --format db: default 2190h, at most 8760h; " +
              '--admin: default 12h, at most 24h)',
          },
        ],
        ['out', { description: 'the file to write; with --format db a prefix: PREFIX.crt, PREFIX.key, PREFIX.cas' }],
        'admin',
        ['user', { value: 'NAME', description: "the operator's name (with --admin)" }],
        [
          'format',
          {
            description: 'with --admin: file (the only form); db: a database server certificate PREFIX.crt, .key, .cas',
            choices: undefined,
          },
        ],
      ],
      examples: [
        'tctl auth sign --host web1.example.com --public-key /etc/ssh/ssh_host_ed25519_key.pub',
        'tctl auth sign --admin --user alice --ttl 8h --out alice-identity.json',
        'tctl auth sign --format db --host db.example.com --out server',
      ],
    },
    { path: 'audit', summary: 'the audit log' },
    {
      path: 'audit ls',
      aliases: ['list'],
      usage: 'audit ls [--limit 50] [--type EVENT] [--failures]',
      summary: 'recent audit events, newest first',
      flags: [
        'limit',
        ['type', { value: 'EVENT', description: 'only events of this type', values: AUDIT_EVENT_TYPES }],
        'failures',
        FORMAT_JSON,
      ],
      examples: ['tctl audit ls --type bot.join --limit 20', 'tctl audit ls --failures'],
    },
    { path: 'version', summary: 'print the version (also --version)' },
    completionCommand('tctl'),
  ],
} as const satisfies ProgramDef<typeof FLAGS>;

/** tctl's parsed flags. */
export type TctlFlags = { [K in keyof typeof FLAGS]?: (typeof FLAGS)[K]['type'] extends 'boolean' ? boolean : string };
