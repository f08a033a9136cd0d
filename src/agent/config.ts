import { parseWith } from '../util/parse.js';
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { MwiError } from '../errors.js';
import { joinMethodInfo, unknownJoinMethod } from '../join/catalog.js';
import { CLIENT_METHODS } from '../join/clients.js';
import { destinationFromUri } from './destination-uri.js';
import { applyJoinUri } from './join-uri.js';
import { parseDuration } from '../util/duration.js';
import type { DestinationConfig } from './destinations/destination.js';
import { destinationSchema, destinationTargets } from './destinations/index.js';
import { duration, MAX_TTL_MS } from './lifetime.js';
import { OUTPUT_TYPES } from './outputs/index.js';
import { entryOf, unionOf } from './registry.js';
import type { ServiceConfig } from './service.js';
import { SERVICE_TYPES } from './services/index.js';
import { ioReason } from '../util/io-reason.js';

export const DEFAULT_CREDENTIAL_TTL = '1h';
export const DEFAULT_RENEWAL_INTERVAL = '20m';

/**
 * Where a daemon keeps its identity when tbot.yaml names no `storage` (Teleport's default is
 * /var/lib/teleport/bot): a daemon that joined with a single-use token must find its identity
 * again after a restart. A one-shot run keeps it in memory unless told otherwise.
 */
export const DEFAULT_STORAGE_DIR = '/var/lib/tbot';

/** `onboarding.<method>`: each join method's own block, as its client half defines it. */
// an emptied block (`bound_keypair:` once its only line is deleted) is YAML's null: taken as absent
const methodBlocks = Object.fromEntries(
  [...CLIENT_METHODS.values()].flatMap((m) =>
    m.options ? [[m.name, z.preprocess((v) => (v === null ? undefined : v), m.options.schema.optional())]] : [],
  ),
);

/** tbot.yaml, version v2: the subset of Teleport's schema that mwi implements. */
export const tbotSchema = z
  .object({
    version: z.literal('v2', { errorMap: () => ({ message: 'expected "v2"' }) }),
    auth_server: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
    // Teleport's public address: one HOST:PORT, its certificate verified with the system trust store
    proxy_server: z
      .string()
      .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(:\d+)?$/, 'expected HOST:PORT (no scheme, one address)')
      .optional(),
    // Teleport's joining URI: address, join method, token and parameter in one (agent/join-uri.ts)
    join_uri: z.string().optional(),
    onboarding: z
      .object({
        join_method: z.string().min(1),
        token: z.string().min(1).optional(),
        ca_pins: z
          .array(
            z
              .string()
              .regex(/^sha256:[0-9a-fA-F]{64}$/, 'expected sha256:<64 hex digits>')
              // deploy/kubernetes/tbot.yaml ships this placeholder: say so rather than fail at the first contact
              .refine(
                (p) => !/^sha256:0{64}$/.test(p),
                'the all-zero pin is a placeholder: put the CA pin from `tctl status` here',
              ),
          )
          .default([]),
        ca_path: z.string().min(1).optional(),
        ...methodBlocks,
      })
      .strict(),
    storage: destinationSchema.optional(),
    credential_ttl: duration.optional(),
    /** Teleport's deprecated name for credential_ttl. */
    certificate_ttl: duration.optional(),
    renewal_interval: duration.default(DEFAULT_RENEWAL_INTERVAL),
    oneshot: z.boolean().default(false),
    fips: z.boolean().default(false),
    /** Debug logging, as `-d`/`--debug` and TBOT_DEBUG. */
    debug: z.boolean().default(false),
    diag_addr: z
      .string()
      .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d+$/, 'expected HOST:PORT')
      .optional(),
    insecure: z.boolean().default(false),
    outputs: z.array(unionOf(OUTPUT_TYPES, 'output')).default([]),
    services: z.array(unionOf(SERVICE_TYPES, 'service')).default([]),
  })
  .strict();

/** The validated, frozen configuration tbot runs with. */
export interface TbotConfig {
  authServers: string[];
  /**
   * `proxy_server` (then also `authServers[0]`): without ca_pins or ca_path, the first contact
   * verifies it with the system trust store and its host name (BotIdentity.firstContactCA).
   */
  proxyServer: string | undefined;
  joinMethod: string;
  /**
   * The join token (read from the file when `token` named one). Never logged. Undefined: none
   * given, which only a tbot resuming an identity from its storage can do without.
   */
  token: string | undefined;
  /** Method-specific options, secrets resolved from files and the environment. Never logged. */
  methodOptions: Readonly<Record<string, unknown>>;
  caPins: string[];
  caPath: string | undefined;
  insecure: boolean;
  storage: DestinationConfig;
  credentialTtlMs: number;
  renewalIntervalMs: number;
  oneshot: boolean;
  /** Debug logging (tbot.yaml `debug`, `-d`, TBOT_DEBUG). */
  debug: boolean;
  /** HOST:PORT for /livez, /readyz, /metrics. */
  diagAddr: string | undefined;
  /** The items of `outputs:` then `services:`, each as its type resolved it. */
  outputs: ServiceConfig[];
  /** What tbot logs at start about the file (a deprecated key, ...). */
  warnings: string[];
}

function fail(field: string, message: string): never {
  throw new MwiError('BAD_CONFIG', message, { field });
}

/**
 * A secret given inline, or as an absolute path to a file holding it (as Teleport reads
 * `onboarding.token`): a file keeps the secret out of argv, where `ps` shows it to every user.
 * An absolute path that cannot be read is an error, never sent as the secret itself.
 */
function secretValue(value: string | undefined, field: string): string | undefined {
  if (!value || !isAbsolute(value)) return value;
  if (!existsSync(value)) fail(field, `file ${value} does not exist`);
  let text: string;
  try {
    text = readFileSync(value, 'utf8').trim();
  } catch (cause) {
    fail(field, `cannot read file ${value}: ${ioReason(cause)}`);
  }
  if (!text) fail(field, `file ${value} is empty`);
  return text;
}

/** Teleport's environment variable for `--proxy-server`. */
export const PROXY_ENV_VAR = 'TELEPORT_PROXY';

/** Teleport's environment variable for the join token (or a path to a file holding it). */
export const TOKEN_ENV_VAR = 'TELEPORT_BOT_TOKEN';

/** Validates a parsed tbot.yaml (or the object the flags built); the one validation path. */
export function validateTbotConfig(raw: unknown, env: NodeJS.ProcessEnv = process.env): TbotConfig {
  const { config, warnings, literal } = applyJoinUri(raw);
  // the "value or absolute file path" rule, except for what a join URI gave (always the value)
  const secret = (value: string | undefined, field: string) =>
    literal.includes(field) ? value : secretValue(value, field);
  const secretPath = (value: string | undefined, field: string) =>
    value && isAbsolute(value) && !literal.includes(field) ? value : undefined;
  const c = parseWith(tbotSchema, config, {
    unknownKey: () =>
      'unknown key (check the spelling; tbot.yaml v2 keys are documented in docs/reference.md, "tbot.yaml (v2)")',
  });
  if (c.auth_server !== undefined && c.proxy_server !== undefined)
    fail(
      'proxy_server',
      'cannot be set together with auth_server (as in Teleport; also from --proxy-server or $TELEPORT_PROXY): ' +
        'proxy_server is a public address whose certificate the system trust store verifies, auth_server the ' +
        "Auth Service's own, verified with onboarding.ca_pins",
    );
  if (c.auth_server === undefined && c.proxy_server === undefined)
    fail('auth_server', 'required: the Auth Service address, HOST:PORT (or proxy_server, its public address)');
  const method = joinMethodInfo(c.onboarding.join_method);
  if (!method) fail('onboarding.join_method', unknownJoinMethod(c.onboarding.join_method));
  const fromEnv = !c.onboarding.token && Boolean(env[TOKEN_ENV_VAR]);
  const token = secret(
    c.onboarding.token ?? (env[TOKEN_ENV_VAR] || undefined),
    fromEnv ? TOKEN_ENV_VAR : 'onboarding.token',
  );
  // no token is fine here: a restart with an identity in storage needs none (startBot requires it
  // only for a join)
  const blocks: Record<string, unknown> = c.onboarding;
  for (const m of CLIENT_METHODS.values()) {
    if (!m.options || !blocks[m.name] || m.name === method.name) continue;
    fail(`onboarding.${m.name}`, `only for join method ${m.name} (this config uses ${method.name})`);
  }
  const options = CLIENT_METHODS.get(method.name)?.options;
  const block = options ? blocks[method.name] : undefined;
  const methodOptions = options?.resolve
    ? options.resolve(block, {
        env,
        secret,
        secretPath,
        warn: (w) => warnings.push(w),
      })
    : { ...(block as object | undefined) };
  if (c.fips) {
    fail(
      'fips',
      "mwi has no FIPS build: Teleport's fips: true runs its FIPS 140 validated tbot binary, and mwi's " +
        'cryptography is the OpenSSL that Node.js ships, not a validated module; remove fips (or set it to false)',
    );
  }
  // Teleport's UnmarshalYAML: certificate_ttl is read with a warning, and credential_ttl wins over it
  let ttlKey = 'credential_ttl';
  if (c.certificate_ttl !== undefined) {
    if (c.credential_ttl === undefined) ttlKey = 'certificate_ttl';
    warnings.push(
      c.credential_ttl === undefined
        ? 'certificate_ttl is deprecated: it is read as credential_ttl; rename it'
        : 'certificate_ttl is deprecated and ignored: credential_ttl is also set and wins; remove certificate_ttl',
    );
  }
  const ttlText = c.credential_ttl ?? c.certificate_ttl ?? DEFAULT_CREDENTIAL_TTL;
  const ttl = parseDuration(ttlText)!;
  const interval = parseDuration(c.renewal_interval)!;
  if (ttl > MAX_TTL_MS) fail(ttlKey, `at most 24h (got ${ttlText})`);
  if (ttl < 1000) fail(ttlKey, 'at least 1s');
  // a one-shot run renews nothing: its interval is never used (Teleport only warns, in any mode)
  if (interval >= ttl && !c.oneshot)
    fail('renewal_interval', `must be less than ${ttlKey} (${c.renewal_interval} >= ${ttlText})`);
  if (c.onboarding.ca_pins.length === 0 && !c.onboarding.ca_path && !c.insecure && !c.proxy_server) {
    fail(
      'onboarding.ca_pins',
      'required for the first join (or onboarding.ca_path; or proxy_server, a public address whose certificate ' +
        'the system trust store verifies; or --insecure to trust any Auth Service: unsafe). mwi requires it on ' +
        'purpose: without a pin, a first join would send its secret to whoever answers',
    );
  }
  const bot = { credentialTtlMs: ttl, renewalIntervalMs: interval };
  // every output type is a service type: one registry resolves the items of both lists
  const outputs = [...c.outputs, ...c.services].map((o, i) =>
    entryOf(SERVICE_TYPES, o.type).resolve(o, { where: `outputs[${i}]`, bot, oneshot: c.oneshot }),
  );
  const storage = c.storage ?? defaultStorage(c.oneshot);
  const targets = outputs.flatMap((o) => (o.destination ? destinationTargets(o.destination) : []));
  targets.push(...destinationTargets(storage));
  const dup = targets.find((d, i) => targets.indexOf(d) !== i);
  if (dup) fail('outputs', `two outputs (or an output and storage) share ${dup}`);
  return Object.freeze({
    authServers: Array.isArray(c.auth_server)
      ? c.auth_server
      : (c.auth_server ?? c.proxy_server!)
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
    proxyServer: c.proxy_server,
    joinMethod: method.name,
    token,
    methodOptions: Object.freeze(methodOptions),
    caPins: c.onboarding.ca_pins.map((p) => p.toLowerCase()),
    caPath: c.onboarding.ca_path,
    insecure: c.insecure,
    storage,
    credentialTtlMs: ttl,
    renewalIntervalMs: interval,
    oneshot: c.oneshot,
    debug: c.debug,
    diagAddr: c.diag_addr,
    outputs,
    warnings,
  });
}

/** The storage when tbot.yaml names none: a directory for a daemon, memory for a one-shot run. */
function defaultStorage(oneshot: boolean): DestinationConfig {
  const raw = oneshot ? { type: 'memory' } : { type: 'directory', path: DEFAULT_STORAGE_DIR };
  // through the schema, so that it carries the same defaults (symlinks, acls) as a written one
  return parseWith(destinationSchema, raw, { root: 'storage' });
}

/** Reads tbot.yaml; YAML errors name the file and line. */
export function readTbotFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new MwiError('BAD_CONFIG', `cannot read config file ${path}: ${ioReason(cause)}`, {
      field: '--config',
      cause,
    });
  }
  let doc: unknown;
  try {
    doc = parse(text, { prettyErrors: true });
  } catch (cause) {
    throw new MwiError(
      'BAD_CONFIG',
      `${path} is not valid YAML: ${cause instanceof Error ? cause.message.split('\n')[0] : String(cause)}`,
      { cause },
    );
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw new MwiError('BAD_CONFIG', `${path} must hold a YAML mapping`);
  return doc as Record<string, unknown>;
}

export interface TbotFlags {
  config?: string | undefined;
  'auth-server'?: string | undefined;
  /** Default $TELEPORT_PROXY, as in Teleport. */
  'proxy-server'?: string | undefined;
  'join-method'?: string | undefined;
  token?: string | undefined;
  'ca-pin'?: string[] | undefined;
  /** Legacy form of --storage (a URI too, as in Teleport). */
  'data-dir'?: string | undefined;
  'destination-dir'?: string | undefined;
  /** tbot's internal storage: `file:///PATH`, a path, or `memory://`. */
  storage?: string | undefined;
  /** An identity output's destination (`tbot start identity --destination URI`). */
  destination?: string | undefined;
  debug?: boolean | undefined;
  'certificate-ttl'?: string | undefined;
  'renewal-interval'?: string | undefined;
  oneshot?: boolean | undefined;
  insecure?: boolean | undefined;
  /** bound_keypair's, declared by its client half (ClientOptions.flags). */
  'registration-secret'?: string | undefined;
  'registration-secret-path'?: string | undefined;
  'static-key-path'?: string | undefined;
  /** Teleport's joining URI (tbot.yaml join_uri): it replaces the file's. */
  'join-uri'?: string | undefined;
  'diag-addr'?: string | undefined;
  /** Teleport's start flags for the output's keys: readers of its directory, cluster, allow_reissue. */
  'reader-user'?: string[] | undefined;
  'reader-group'?: string[] | undefined;
  cluster?: string | undefined;
  'allow-reissue'?: boolean | undefined;
  /** Teleport's --fips: set as `fips: true`, which validation refuses with the reason. */
  fips?: boolean | undefined;
}

/** Teleport's environment variable for the Auth Service address (`--auth-server`). */
export const AUTH_SERVER_ENV_VAR = 'TELEPORT_AUTH_SERVER';

/**
 * Builds the tbot.yaml object from a config file (optional) and flags (which override), so
 * both go through validateTbotConfig. `tbot configure` prints this object. The address falls
 * back to $TELEPORT_AUTH_SERVER when neither the flags nor the file give one (the file beats
 * the environment, as for $TELEPORT_BOT_TOKEN).
 */
export function buildTbotFile(flags: TbotFlags, env: NodeJS.ProcessEnv = process.env): Record<string, unknown> {
  const base: Record<string, unknown> = flags.config ? readTbotFile(flags.config) : { version: 'v2' };
  if (flags['auth-server']) base.auth_server = flags['auth-server'];
  if (flags['join-uri']) base.join_uri = flags['join-uri'];
  // a join URI names the address and the method: the environment's defaults do not apply
  const byUri = base.join_uri !== undefined;
  // as in Teleport, the flag (or its variable) replaces the file's proxy_server; one with auth_server is refused
  const proxy = flags['proxy-server'] || (byUri ? undefined : env[PROXY_ENV_VAR]);
  if (proxy) base.proxy_server = proxy;
  const fromFile = base.onboarding;
  const onboarding: Record<string, unknown> = {
    join_method: undefined,
    ...(typeof fromFile === 'object' ? fromFile : {}),
  };
  if (flags['join-method']) onboarding.join_method = flags['join-method'];
  if (flags.token) onboarding.token = flags.token;
  // a join method's own flags set keys of its onboarding block
  for (const m of CLIENT_METHODS.values()) {
    for (const [flag, key] of Object.entries(m.options?.flags ?? {})) {
      const value = flags[flag as keyof TbotFlags];
      if (value) onboarding[m.name] = { ...(onboarding[m.name] as object | undefined), [key]: value };
    }
  }
  if (flags['ca-pin']?.length) onboarding.ca_pins = flags['ca-pin'].flatMap((p) => p.split(','));
  if (!flags.config && !onboarding.join_method && !byUri) onboarding.join_method = 'token';
  if (onboarding.join_method === undefined) delete onboarding.join_method;
  if (Object.keys(onboarding).length > 0 || (!flags.config && !byUri)) base.onboarding = onboarding;
  if (flags['data-dir'] && flags.storage)
    throw new MwiError('BAD_CONFIG', 'give --storage or its legacy form --data-dir, not both', { field: '--storage' });
  const storage = flags.storage ?? flags['data-dir'];
  if (storage) base.storage = destinationFromUri(storage, flags.storage ? '--storage' : '--data-dir');
  const readers = [
    ...(flags['reader-user'] ?? []).map((user) => ({ user })),
    ...(flags['reader-group'] ?? []).map((group) => ({ group })),
  ];
  const identityTo = (destination: Record<string, unknown>) => {
    const outputs = base.outputs ?? [];
    const identity = {
      type: 'identity',
      // Teleport's --reader-user/--reader-group: the readers of this output's directory
      destination: readers.length > 0 ? { ...destination, readers } : destination,
      ...(flags.cluster ? { cluster: flags.cluster } : {}),
      ...(flags['allow-reissue'] ? { allow_reissue: true } : {}),
    };
    // an `outputs` that is not a list is left for validateTbotConfig to name
    base.outputs = Array.isArray(outputs) ? [...(outputs as unknown[]), identity] : outputs;
  };
  if (flags['destination-dir']) identityTo({ type: 'directory', path: flags['destination-dir'] });
  if (flags.destination) identityTo(destinationFromUri(flags.destination, '--destination'));
  if (flags['certificate-ttl']) base.credential_ttl = flags['certificate-ttl'];
  if (flags['renewal-interval']) base.renewal_interval = flags['renewal-interval'];
  if (flags.oneshot) base.oneshot = true;
  if (flags['diag-addr']) base.diag_addr = flags['diag-addr'];
  if (flags.insecure) base.insecure = true;
  if (flags.debug) base.debug = true;
  if (flags.fips) base.fips = true;
  const outputFlags = ['reader-user', 'reader-group', 'cluster', 'allow-reissue'] as const;
  const stray = outputFlags.find((f) => flags[f] !== undefined && flags[f] !== false);
  if (stray && !flags['destination-dir'] && !flags.destination)
    throw new MwiError('BAD_CONFIG', 'applies to the output of --destination (tbot start identity --destination)', {
      field: `--${stray}`,
    });
  if (base.auth_server === undefined && base.proxy_server === undefined && !byUri && env[AUTH_SERVER_ENV_VAR])
    base.auth_server = env[AUTH_SERVER_ENV_VAR];
  return base;
}
