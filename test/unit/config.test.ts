import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { buildTbotFile, DEFAULT_STORAGE_DIR, readTbotFile, validateTbotConfig } from '../../src/agent/config.js';
import { DEFAULT_ACL_MODE } from '../../src/agent/destinations/acl.js';
import { entryOf } from '../../src/agent/registry.js';
import { SERVICE_TYPES } from '../../src/agent/services/index.js';
import { isMwiError } from '../../src/errors.js';
import { registrationSecret } from '../../src/join/bound_keypair/client.js';
import { formatDuration, parseDuration } from '../../src/util/duration.js';
import { cli, tempDir } from '../helpers/procs.js';

const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures');

/** Compares with a golden file; UPDATE_GOLDEN=1 rewrites it. */
function golden(name: string, actual: string): void {
  const path = join(FIXTURES, 'golden', name);
  if (process.env.UPDATE_GOLDEN) writeFileSync(path, actual);
  // a missing golden file is a failure, not a fresh baseline
  assert.ok(existsSync(path), `golden file ${name} is missing (UPDATE_GOLDEN=1 to create it)`);
  assert.equal(actual, readFileSync(path, 'utf8'), `golden file ${name} differs (UPDATE_GOLDEN=1 to accept)`);
}

describe('tbot configuration', () => {
  it('a full tbot.yaml validates to the expected frozen config (golden)', () => {
    const cfg = validateTbotConfig(readTbotFile(join(FIXTURES, 'tbot-full.yaml')));
    assert.ok(Object.isFrozen(cfg));
    golden('tbot-full.json', `${JSON.stringify(cfg, null, 2)}\n`);
  });

  it('flags build the same object a file would (tbot configure, golden)', async () => {
    const r = await cli('tbot', [
      'configure',
      '--auth-server',
      '127.0.0.1:3025',
      '--token',
      '0123456789abcdef0123456789abcdef',
      '--ca-pin',
      `sha256:${'a'.repeat(64)}`,
      '--data-dir',
      '/var/lib/tbot',
      '--destination-dir',
      '/opt/machine-id',
      '--certificate-ttl',
      '30m',
      '--renewal-interval',
      '10m',
      '--oneshot',
    ]);
    assert.equal(r.code, 0, r.stderr);
    golden('configure-flags.yaml', r.stdout);
    // and that YAML, fed back as a file, validates to the same config as the flags
    const fromFlags = validateTbotConfig(
      buildTbotFile({
        'auth-server': '127.0.0.1:3025',
        token: '0123456789abcdef0123456789abcdef',
        'ca-pin': [`sha256:${'a'.repeat(64)}`],
        'data-dir': '/var/lib/tbot',
        'destination-dir': '/opt/machine-id',
        'certificate-ttl': '30m',
        'renewal-interval': '10m',
        oneshot: true,
      }),
    );
    const dir = tempDir('configure');
    try {
      writeFileSync(join(dir.path, 'tbot.yaml'), r.stdout);
      assert.deepEqual(validateTbotConfig(readTbotFile(join(dir.path, 'tbot.yaml'))), fromFlags);
    } finally {
      dir.cleanup();
    }
  });

  it('flags override the file', () => {
    const file = buildTbotFile({
      config: join(FIXTURES, 'tbot-full.yaml'),
      'auth-server': '10.0.0.1:3025',
      'renewal-interval': '1m',
    });
    const cfg = validateTbotConfig(file);
    assert.deepEqual(cfg.authServers, ['10.0.0.1:3025']);
    assert.equal(cfg.renewalIntervalMs, 60_000);
    assert.equal(cfg.outputs.length, 2);
  });

  it('a token given as an absolute path is read from the file', () => {
    const dir = tempDir('token');
    const path = join(dir.path, 'token');
    writeFileSync(path, 'fedcba9876543210fedcba9876543210\n');
    try {
      const cfg = validateTbotConfig(
        buildTbotFile({ 'auth-server': 'a:1', token: path, 'ca-pin': [`sha256:${'b'.repeat(64)}`] }),
      );
      assert.equal(cfg.token, 'fedcba9876543210fedcba9876543210');
    } finally {
      dir.cleanup();
    }
  });

  it('two outputs in one directory are refused', () => {
    const file = buildTbotFile({
      'auth-server': 'a:1',
      token: 't',
      'ca-pin': [`sha256:${'b'.repeat(64)}`],
      'data-dir': '/x',
      'destination-dir': '/x',
    });
    assert.throws(
      () => validateTbotConfig(file),
      /outputs: two outputs \(or an output and storage\) share the directory \/x/,
    );
  });
});

const PIN = `sha256:${'b'.repeat(64)}`;
const PEM_KEY = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const FLAGS = { 'auth-server': 'a:1', token: 't', 'ca-pin': [PIN] };

/** Refused naming `field`; `message` is matched against what follows "field: ". */
function refused(raw: unknown, field: string, message: RegExp, env: NodeJS.ProcessEnv = {}): void {
  assert.throws(
    () => validateTbotConfig(raw, env),
    (e: unknown) =>
      isMwiError(e, 'BAD_CONFIG') &&
      e.field === field &&
      e.message.startsWith(`${field}: `) &&
      message.test(e.message.slice(field.length + 2)),
  );
}

describe('outputs and services', () => {
  const file = (extra: Record<string, unknown>) => ({ ...buildTbotFile(FLAGS), ...extra });
  const out = (extra: object = {}) => ({ type: 'identity', destination: { type: 'memory' }, ...extra });

  it("each output checks its lifetime against the bot's, naming its own fields", () => {
    refused(file({ outputs: [out({ credential_ttl: '25h' })] }), 'outputs[0].credential_ttl', /^at most 24h$/);
    // (issue #11: an output sets both or neither, so these give both)
    const short = file({ outputs: [out(), out({ credential_ttl: '10m', renewal_interval: '20m' })] });
    refused(short, 'outputs[1].renewal_interval', /^must be less than credential_ttl \(20m0s >= 10m0s\)$/);
    // the services: list counts on after outputs:
    const long = file({ outputs: [out()], services: [out({ credential_ttl: '1h', renewal_interval: '2h' })] });
    refused(long, 'outputs[1].renewal_interval', /\(2h0m0s >= 1h0m0s\)$/);
  });

  it("an output's credential_ttl and renewal_interval come both or neither, as in Teleport, naming the missing one", () => {
    const ttlOnly = file({ outputs: [out({ credential_ttl: '10m' })] });
    refused(ttlOnly, 'outputs[0].renewal_interval', /^required when credential_ttl is set: .*both or neither/);
    const intervalOnly = file({ outputs: [out(), out({ renewal_interval: '5m' })] });
    refused(intervalOnly, 'outputs[1].credential_ttl', /^required when renewal_interval is set/);
    const both = validateTbotConfig(file({ outputs: [out({ credential_ttl: '10m', renewal_interval: '5m' })] }));
    assert.deepEqual(
      [both.outputs[0]].map((o) => [(o as any).credentialTtlMs, (o as any).renewalIntervalMs]),
      [[600_000, 300_000]],
    );
  });

  it('one-shot: a credential TTL at or below the renewal interval is not an error (the interval is never used)', () => {
    const raw = { ...file({}), credential_ttl: '10m', renewal_interval: '20m' };
    refused(raw, 'renewal_interval', /^must be less than credential_ttl \(20m >= 10m\)$/);
    assert.equal(validateTbotConfig({ ...raw, oneshot: true }).credentialTtlMs, 600_000);
    const perOutput = file({ outputs: [out({ credential_ttl: '5m', renewal_interval: '1h' })] });
    refused(perOutput, 'outputs[0].renewal_interval', /^must be less than credential_ttl/);
    assert.equal(validateTbotConfig({ ...perOutput, oneshot: true }).outputs.length, 1);
  });

  it('the schemas come from the registries: unknown types and keys are named', () => {
    const ssh = file({ outputs: [out({ type: 'ssh_host' })] });
    refused(
      ssh,
      'outputs[0].type',
      /^mwi has no output type "ssh_host" \(it has: identity, workload-identity-x509, workload-identity-jwt; docs\/teleport\.md/,
    );
    refused(file({ services: [out({ nme: 'x' })] }), 'services[0].nme', /^unknown key/);
    const disk = file({ storage: { type: 'disk' } });
    refused(
      disk,
      'storage.type',
      /^mwi has no destination type "disk" \(it has: directory, memory, kubernetes_secret; /,
    );
    const extra = file({ outputs: [out({ destination: { type: 'memory', path: '/x' } })] });
    refused(extra, 'outputs[0].destination.path', /^unknown key/);
  });

  it("a join method of Teleport's that mwi lacks is named as such; a typo is an unknown method", () => {
    const withMethod = (m: string) => {
      const f = buildTbotFile({ ...FLAGS, 'join-method': m });
      return f;
    };
    refused(withMethod('tpm'), 'onboarding.join_method', /^join method "tpm" is Teleport's and not in mwi yet/);
    refused(withMethod('tokn'), 'onboarding.join_method', /^unknown join method "tokn" \(expected one of: token/);
  });

  it("Teleport's start flags for the output: --reader-user/--reader-group, --cluster, --allow-reissue; --fips refused", () => {
    const f = buildTbotFile({
      ...FLAGS,
      destination: '/out',
      'reader-user': ['alice', '1001'],
      'reader-group': ['ops'],
      cluster: 'c1',
      'allow-reissue': true,
    });
    assert.deepEqual(f.outputs, [
      {
        type: 'identity',
        destination: {
          type: 'directory',
          path: '/out',
          readers: [{ user: 'alice' }, { user: '1001' }, { group: 'ops' }],
        },
        cluster: 'c1',
        allow_reissue: true,
      },
    ]);
    assert.equal(validateTbotConfig(f).outputs.length, 1);
    assert.throws(
      () => buildTbotFile({ ...FLAGS, 'reader-user': ['alice'] }),
      (e: unknown) => isMwiError(e, 'BAD_CONFIG') && e.field === '--reader-user',
    );
    refused(buildTbotFile({ ...FLAGS, fips: true }), 'fips', /mwi has no FIPS build|FIPS/);
  });

  it('a destination without directories shares nothing', () => {
    const cfg = validateTbotConfig(file({ outputs: [out(), out()], services: [out()] }));
    assert.deepEqual(
      cfg.outputs.map((o) => o.destination?.type),
      ['memory', 'memory', 'memory'],
    );
  });
});

describe('onboarding options of join methods', () => {
  const withBlocks = (method: string, blocks: Record<string, unknown>) => {
    const file = buildTbotFile({ ...FLAGS, 'join-method': method });
    return { ...file, onboarding: { ...(file.onboarding as object), ...blocks } };
  };
  const optionsOf = (raw: unknown, env: NodeJS.ProcessEnv = {}) => validateTbotConfig(raw, env).methodOptions;

  it('a block is only for its own method', () => {
    const gitlab = withBlocks('token', { gitlab: {} });
    refused(gitlab, 'onboarding.gitlab', /^only for join method gitlab \(this config uses token\)$/);
    const bk = withBlocks('gitlab', { bound_keypair: {} });
    refused(bk, 'onboarding.bound_keypair', /^only for join method bound_keypair \(this config uses gitlab\)$/);
    refused(withBlocks('token', { github: {} }), 'onboarding.github', /^unknown key/);
  });

  it('gitlab: the block is passed as it is, and checked', () => {
    const named = { token_env_var_name: 'MY_JWT' };
    assert.deepEqual(optionsOf(withBlocks('gitlab', { gitlab: named })), named);
    assert.deepEqual(optionsOf(withBlocks('gitlab', {})), {});
    const bad = withBlocks('gitlab', { gitlab: { token_env_var_name: '1x' } });
    refused(bad, 'onboarding.gitlab.token_env_var_name', /^expected an environment variable name$/);
  });

  it('bound_keypair: the secret and the static key from the block, files or the environment', () => {
    const dir = tempDir('bk-options');
    const bk = (block: Record<string, unknown>) => withBlocks('bound_keypair', { bound_keypair: block });
    const field = 'onboarding.bound_keypair';
    try {
      const secretFile = join(dir.path, 'secret');
      writeFileSync(secretFile, 'from-a-file-0123456789\n');
      const keyFile = join(dir.path, 'key.pem');
      writeFileSync(keyFile, 'PEM');
      const flags = buildTbotFile({ ...FLAGS, 'join-method': 'bound_keypair', 'registration-secret': secretFile });
      const onboarding = flags.onboarding as Record<string, unknown>;
      assert.deepEqual(onboarding.bound_keypair, { registration_secret: secretFile });
      // (issue #11: the variable holds a real key file, base64 as Teleport takes it; was 'ENV PEM')
      const staticKey = { TBOT_BOUND_KEYPAIR_STATIC_KEY: Buffer.from(PEM_KEY).toString('base64') };
      // the secret's file is read at the first join only (a bound tbot restarts without it)
      const fromFile = {
        registration_secret_file: { path: secretFile, field: `${field}.registration_secret` },
        static_private_key: PEM_KEY,
      };
      assert.deepEqual(optionsOf(flags, staticKey), fromFile);
      assert.equal(registrationSecret(optionsOf(flags, staticKey)), 'from-a-file-0123456789');
      const inline = bk({ registration_secret: 'inline', static_private_key_path: keyFile });
      const env = { TBOT_REGISTRATION_SECRET: 'env', ...staticKey };
      assert.deepEqual(optionsOf(inline, env), { registration_secret: 'inline', static_private_key: 'PEM' });
      const none = withBlocks('bound_keypair', {});
      assert.deepEqual(optionsOf(none, { TBOT_REGISTRATION_SECRET: 'env' }), { registration_secret: 'env' });
      // the PEM itself is accepted too; anything else is refused naming the variable
      const raw = { TBOT_BOUND_KEYPAIR_STATIC_KEY: PEM_KEY };
      assert.deepEqual(optionsOf(none, raw), { static_private_key: PEM_KEY });
      const wrapped = Buffer.from(PEM_KEY)
        .toString('base64')
        .replace(/(.{64})/g, '$1\n');
      assert.deepEqual(optionsOf(none, { TBOT_BOUND_KEYPAIR_STATIC_KEY: wrapped }), { static_private_key: PEM_KEY });
      for (const bad of ['ENV PEM', Buffer.from('not a key').toString('base64')]) {
        refused(none, 'TBOT_BOUND_KEYPAIR_STATIC_KEY', /^expected the private key file \(PEM\), in standard base64/, {
          TBOT_BOUND_KEYPAIR_STATIC_KEY: bad,
        });
      }
      const missing = join(dir.path, 'missing');
      // (was refused here, at startup: now only the join that registers reads it)
      const later = optionsOf(bk({ registration_secret: missing }));
      assert.throws(
        () => registrationSecret(later),
        (e: unknown) => isMwiError(e, 'BAD_CONFIG') && e.field === `${field}.registration_secret`,
      );
      refused(bk({ static_private_key_path: missing }), `${field}.static_private_key_path`, /^cannot read /);
    } finally {
      dir.cleanup();
    }
  });
});

describe('tbot.yaml keys Teleport users have (issue #11)', () => {
  const base = (extra: Record<string, unknown> = {}) => ({ ...buildTbotFile(FLAGS), ...extra });
  const out = (extra: object = {}) => ({ type: 'identity', destination: { type: 'memory' }, ...extra });
  const dirOut = (dest: object, extra: object = {}) =>
    out({ destination: { type: 'directory', path: '/opt/out', ...dest }, ...extra });

  it('certificate_ttl: read as credential_ttl with a warning; credential_ttl wins when both are set', () => {
    const plain = validateTbotConfig(base());
    assert.equal(plain.credentialTtlMs, 3_600_000);
    assert.deepEqual(plain.warnings, []);
    const alone = validateTbotConfig(base({ certificate_ttl: '30m' }));
    assert.equal(alone.credentialTtlMs, 1_800_000);
    assert.deepEqual(alone.warnings, ['certificate_ttl is deprecated: it is read as credential_ttl; rename it']);
    const both = validateTbotConfig(base({ credential_ttl: '2h', certificate_ttl: '30m' }));
    assert.equal(both.credentialTtlMs, 7_200_000);
    assert.match(both.warnings.join('\n'), /^certificate_ttl is deprecated and ignored: credential_ttl .* wins/);
    refused(base({ certificate_ttl: 'soon' }), 'certificate_ttl', /^expected a duration/);
    refused(base({ certificate_ttl: '25h' }), 'certificate_ttl', /^at most 24h \(got 25h\)$/);
    refused(base({ certificate_ttl: '10m' }), 'renewal_interval', /^must be less than certificate_ttl \(20m >= 10m\)$/);
  });

  it('fips: true is refused with the reason; fips: false is accepted', () => {
    refused(base({ fips: true }), 'fips', /^mwi has no FIPS build: Teleport's fips: true .*set it to false\)$/);
    assert.equal(validateTbotConfig(base({ fips: false })).oneshot, false);
    refused(base({ fips: 'yes' }), 'fips', /^Expected boolean/);
  });

  it('default storage: a directory for a daemon (as Teleport), memory for a one-shot run; a given one is kept', () => {
    assert.equal(DEFAULT_STORAGE_DIR, '/var/lib/tbot');
    assert.deepEqual(validateTbotConfig(base()).storage, {
      type: 'directory',
      path: DEFAULT_STORAGE_DIR,
      symlinks: 'try-secure',
      acls: DEFAULT_ACL_MODE,
      readers: [],
    });
    assert.deepEqual(validateTbotConfig(base({ oneshot: true })).storage, { type: 'memory' });
    assert.deepEqual(validateTbotConfig(base({ storage: { type: 'memory' } })).storage, { type: 'memory' });
    const flags = validateTbotConfig(buildTbotFile({ ...FLAGS, 'data-dir': '/srv/bot' })).storage;
    assert.equal((flags as { path?: string }).path, '/srv/bot');
    // the default directory counts against outputs like a written one
    const clash = base({ outputs: [dirOut({ path: DEFAULT_STORAGE_DIR })] });
    refused(clash, 'outputs', /share the directory \/var\/lib\/tbot$/);
  });

  it('directory destinations: symlinks and acls take Teleport values; each reader names one user or one group', () => {
    const storage = (extra: object) => base({ storage: { type: 'directory', path: '/srv/bot', ...extra } });
    const modes = validateTbotConfig(storage({ symlinks: 'insecure', acls: 'off' })).storage;
    assert.deepEqual(modes, { type: 'directory', path: '/srv/bot', symlinks: 'insecure', acls: 'off', readers: [] });
    refused(storage({ symlinks: 'yes' }), 'storage.symlinks', /^Invalid enum value. Expected 'secure' \| 'try-secure'/);
    refused(storage({ acls: 'maybe' }), 'storage.acls', /^Invalid enum value. Expected 'off' \| 'try' \| 'required'/);
    const readers = [{ user: 'deploy' }, { user: 1001 }, { group: 'ssl-cert' }, { group: '1002' }];
    const ok = validateTbotConfig(base({ outputs: [dirOut({ readers, acls: 'required' })] }));
    assert.deepEqual((ok.outputs[0]!.destination as { readers?: unknown }).readers, readers);
    const one = /^exactly one of user or group per entry$/;
    refused(storage({ readers: [{ user: 'a', group: 'b' }] }), 'storage.readers[0]', one);
    refused(base({ outputs: [dirOut({ readers: [{ user: 'a' }, {}] })] }), 'outputs[0].destination.readers[1]', one);
    refused(storage({ readers: [{ uid: 5 }] }), 'storage.readers[0].uid', /^unknown key/);
    const id = /^expected a user or group name, or a numeric id$/;
    refused(storage({ readers: [{ user: -1 }] }), 'storage.readers[0].user', id);
    refused(storage({ readers: [{ group: 'a b' }] }), 'storage.readers[0].group', id);
    refused(storage({ readers: { user: 'a' } }), 'storage.readers', /^Expected array/);
  });

  it('identity output: roles refused as Teleport v19 does, ssh_config on|off, allow_reissue, cluster', async () => {
    const roles = base({ outputs: [out(), out({ roles: ['access'] })] });
    refused(roles, 'outputs[1].roles', /^not supported \(as in Teleport v19, .*use all of the bot's roles/);
    const cfg = validateTbotConfig(
      base({ outputs: [out({ roles: [], allow_reissue: true, cluster: 'c.example' }), out({ ssh_config: 'off' })] }),
    );
    const [first, second] = cfg.outputs as unknown as Array<Record<string, unknown>>;
    assert.deepEqual(
      [first!.ssh_config, first!.allow_reissue, first!.cluster, second!.ssh_config],
      ['on', true, 'c.example', 'off'],
    );
    refused(base({ outputs: [out({ ssh_config: 'no' })] }), 'outputs[0].ssh_config', /^expected "on" or "off"$/);
    refused(base({ outputs: [out({ allow_reissue: 'yes' })] }), 'outputs[0].allow_reissue', /^Expected boolean/);
    // cluster: the bot's own is accepted, another refused; without one the Auth Service is not asked
    const identity = entryOf(SERVICE_TYPES, 'identity');
    const named = (name: string) => async () => name;
    await identity.checkCluster!(first as never, { where: 'outputs[0]', clusterName: named('c.example') });
    await assert.rejects(
      identity.checkCluster!(first as never, { where: 'outputs[0]', clusterName: named('prod.example') }),
      (e: unknown) =>
        isMwiError(e, 'BAD_CONFIG') &&
        e.field === 'outputs[0].cluster' &&
        /"c.example" is not this bot's cluster "prod.example": mwi has no trusted clusters/.test(e.message),
    );
    await identity.checkCluster!(second as never, {
      where: 'outputs[1]',
      clusterName: () => Promise.reject(new Error('asked the Auth Service without a cluster to check')),
    });
  });

  it('unknown keys keep the unknown-key error', () => {
    refused(base({ fipz: true }), 'fipz', /^unknown key \(check the spelling/);
    refused(base({ storage: { type: 'directory', path: '/x', reader: [] } }), 'storage.reader', /^unknown key/);
    refused(base({ outputs: [out({ roles_: [] })] }), 'outputs[0].roles_', /^unknown key/);
  });
});

describe('durations', () => {
  it('parses Go-style durations and refuses the rest', () => {
    assert.equal(parseDuration('20m'), 1_200_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('1.5h'), 5_400_000);
    for (const bad of ['', '10', 'm', '-5m', '1 h', '1y', 'forever']) assert.equal(parseDuration(bad), undefined, bad);
    assert.equal(formatDuration(5_400_000), '1h30m0s');
  });
});
