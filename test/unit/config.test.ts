import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { buildTbotFile, readTbotFile, validateTbotConfig } from '../../src/agent/config.js';
import { isMwiError } from '../../src/errors.js';
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
    const short = file({ outputs: [out(), out({ credential_ttl: '10m' })] });
    refused(short, 'outputs[1].renewal_interval', /^must be less than credential_ttl \(20m0s >= 10m0s\)$/);
    // the services: list counts on after outputs:
    const long = file({ outputs: [out()], services: [out({ renewal_interval: '2h' })] });
    refused(long, 'outputs[1].renewal_interval', /\(2h0m0s >= 1h0m0s\)$/);
  });

  it('the schemas come from the registries: unknown types and keys are named', () => {
    const ssh = file({ outputs: [out({ type: 'ssh_host' })] });
    refused(ssh, 'outputs[0].type', /^Invalid literal value, expected "identity"$/);
    refused(file({ services: [out({ nme: 'x' })] }), 'services[0].nme', /^unknown key/);
    const disk = file({ storage: { type: 'disk' } });
    refused(disk, 'storage.type', /^Invalid discriminator value. Expected 'directory' \| 'memory'$/);
    const extra = file({ outputs: [out({ destination: { type: 'memory', path: '/x' } })] });
    refused(extra, 'outputs[0].destination.path', /^unknown key/);
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
      const staticKey = { TBOT_BOUND_KEYPAIR_STATIC_KEY: 'ENV PEM' };
      const fromFile = { registration_secret: 'from-a-file-0123456789', static_private_key: 'ENV PEM' };
      assert.deepEqual(optionsOf(flags, staticKey), fromFile);
      const inline = bk({ registration_secret: 'inline', static_private_key_path: keyFile });
      const env = { TBOT_REGISTRATION_SECRET: 'env', ...staticKey };
      assert.deepEqual(optionsOf(inline, env), { registration_secret: 'inline', static_private_key: 'PEM' });
      const none = withBlocks('bound_keypair', {});
      assert.deepEqual(optionsOf(none, { TBOT_REGISTRATION_SECRET: 'env' }), { registration_secret: 'env' });
      const missing = join(dir.path, 'missing');
      refused(bk({ registration_secret: missing }), `${field}.registration_secret`, /does not exist/);
      refused(bk({ static_private_key_path: missing }), `${field}.static_private_key_path`, /^cannot read /);
    } finally {
      dir.cleanup();
    }
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
