import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildTbotFile, validateTbotConfig, type TbotFlags } from '../../src/agent/config.js';
import { applyJoinUri, parseJoinUri } from '../../src/agent/join-uri.js';
import { isMwiError } from '../../src/errors.js';
import { registrationSecret } from '../../src/join/bound_keypair/client.js';
import { tempDir } from '../helpers/procs.js';

// Teleport's joining URI (--join-uri, tbot.yaml join_uri), and bound_keypair's
// --registration-secret-path and --static-key-path.

const PIN = `sha256:${'a'.repeat(64)}`;

describe('join URIs', () => {
  it("parses Teleport's form: address kind, method spellings, token, parameter, host and port", () => {
    assert.deepEqual(parseJoinUri('tbot+proxy+token://asdf@example.com:1234'), {
      addressKind: 'proxy',
      joinMethod: 'token',
      token: 'asdf',
      parameter: undefined,
      address: 'example.com:1234',
    });
    assert.deepEqual(parseJoinUri('tbot+auth+bound-keypair://token:param@example.com'), {
      addressKind: 'auth',
      joinMethod: 'bound_keypair',
      token: 'token',
      parameter: 'param',
      address: 'example.com',
    });
    const method = (m: string) => parseJoinUri(`tbot+proxy+${m}://t@h:1`).joinMethod;
    assert.equal(method('boundkeypair'), 'bound_keypair');
    assert.equal(method('terraform-cloud'), 'terraform_cloud');
    assert.equal(method('terraformcloud'), 'terraform_cloud');
    assert.equal(method('azure-devops'), 'azure_devops');
    assert.equal(method('azuredevops'), 'azure_devops');
    assert.equal(parseJoinUri('TBOT+Proxy+GitHub://t@h:1').joinMethod, 'github', 'a scheme is case-insensitive');
    // percent-encoding: any character in the token and parameter; an IPv6 host; a trailing slash
    const enc = parseJoinUri('tbot+auth+bound-keypair://a%40b%3Ac%2F:s%3Ae%25t%20@[2001:db8::1]:3025/');
    assert.deepEqual([enc.token, enc.parameter, enc.address], ['a@b:c/', 's:e%t ', '[2001:db8::1]:3025']);
    assert.equal(parseJoinUri('tbot+proxy+token://t:@h:0443').parameter, undefined, 'an empty parameter is none');
    assert.equal(parseJoinUri('tbot+proxy+token://t:@h:0443').address, 'h:443');
  });

  it('hostile input is refused naming join_uri, never repeating the token or the parameter', () => {
    const cases: Array<[string, RegExp]> = [
      ['', /^expected tbot\+proxy\+METHOD/],
      ['https://example.com', /unsupported joining URI scheme "https"/],
      ['tbot+proxy+token', /^expected tbot\+proxy/],
      ['tbot+foo+token://s3cr3t@example.com', /address kind "foo" must be one of proxy, auth/],
      ['tbot+proxy+token+x://s3cr3t@h', /unsupported joining URI scheme/],
      ['tbot+proxy+bar://s3cr3t@example.com', /unknown join method "bar" \(expected one of: token, bound-keypair, /],
      ['tbot+proxy+tpm://s3cr3t@example.com', /join method "tpm" is Teleport's and not in mwi yet/],
      ['tbot+proxy+generic-oidc://s3cr3t@h', /join method "generic_oidc" is Teleport's and not in mwi yet/],
      ['tbot+proxy+bound_keypair://s3cr3t@h', /cannot hold "_": write it with "-" or no separator \(bound-keypair/],
      ['tbot+proxy+token://example.com', /^no token: expected/],
      ['tbot+proxy+token://s3cr3t@', /^no host after "@"/],
      ['tbot+proxy+token://s3cr3t@:443', /^no host before the port/],
      ['tbot+proxy+token://:p4r4m@h:1', /^no token before "@"/],
      ['tbot+proxy+token://s3cr3t@h:0', /^port 0 is out of range \(1 to 65535\)/],
      ['tbot+proxy+token://s3cr3t@h:65536', /^port 65536 is out of range/],
      ['tbot+proxy+token://s3cr3t@h:123456', /^port 123456 is out of range/],
      ['tbot+proxy+token://s3cr3t@h:https', /^port "https" is not a number/],
      ['tbot+proxy+token://s3cr3t@h:', /^port "" is not a number/],
      ['tbot+proxy+token://s3cr3t@h_x:1', /"h_x" is not a host name or address/],
      ['tbot+proxy+token://s3cr3t@h:1/path', /no path, query or fragment/],
      ['tbot+proxy+token://s3cr3t@h:1?x=1', /no path, query or fragment/],
      ['tbot+proxy+token://s3cr3t@h:1#f', /no path, query or fragment/],
      ['tbot+proxy+token://s3c/r3t@h:1', /no path, query or fragment/],
      ['tbot+proxy+token://s3@cr3t@h:1', /the token holds an "@": percent-encode it/],
      ['tbot+proxy+token://s3cr3t%zz@h:1', /the token holds a % that starts no %XX escape/],
      ['tbot+proxy+bound-keypair://s3cr3t:p4r4m%E0%A4%A@h:1', /the parameter holds a % that starts no %XX/],
      ['tbot+proxy+token://s3cr3t @h:1', /no spaces or control characters/],
      ['tbot+proxy+token://s3cr3t@h:1\n', /no spaces or control characters/],
      ['tbot+proxy+token://s3cr3t@h\u202e:1', /no spaces or control characters/],
    ];
    for (const [uri, message] of cases) {
      assert.throws(
        () => parseJoinUri(uri),
        (e: unknown) => {
          assert.ok(isMwiError(e, 'BAD_CONFIG') && e.field === 'join_uri', `${uri}: ${String(e)}`);
          assert.match(e.message.slice('join_uri: '.length), message, uri);
          assert.doesNotMatch(e.message, /s3c|cr3t|p4r4m/, uri);
          return true;
        },
      );
    }
  });

  it('applied to tbot.yaml: the address, method, token and parameter; what says the same is no conflict', () => {
    const uri = 'tbot+proxy+bound-keypair://bot-token:reg-secret@mwi.example.com:443';
    assert.deepEqual(applyJoinUri({ version: 'v2', join_uri: uri }).config, {
      version: 'v2',
      join_uri: uri,
      proxy_server: 'mwi.example.com:443',
      onboarding: {
        join_method: 'bound_keypair',
        token: 'bot-token',
        bound_keypair: { registration_secret: 'reg-secret' },
      },
    });
    const same = { join_method: 'bound_keypair', bound_keypair: { registration_secret: 'reg-secret' } };
    assert.deepEqual(applyJoinUri({ join_uri: uri, onboarding: same }).warnings, []);
    const auth = applyJoinUri({ join_uri: 'tbot+auth+gitlab://gl-token:MY_JWT@10.0.0.1:3025' }).config;
    assert.deepEqual(auth, {
      join_uri: 'tbot+auth+gitlab://gl-token:MY_JWT@10.0.0.1:3025',
      auth_server: '10.0.0.1:3025',
      onboarding: { join_method: 'gitlab', token: 'gl-token', gitlab: { token_env_var_name: 'MY_JWT' } },
    });
    // a parameter for a method that takes none: ignored with a warning that does not repeat it, as in Teleport
    const gh = applyJoinUri({ join_uri: 'tbot+proxy+github://gh-token:PARAM@h:443' });
    assert.deepEqual(gh.warnings, [
      "join_uri: join method github takes no parameter in mwi; the URI's parameter is ignored",
    ]);
    assert.equal((gh.config as { onboarding: { github?: unknown } }).onboarding.github, undefined);
    assert.deepEqual(applyJoinUri({ version: 'v2' }), { config: { version: 'v2' }, warnings: [], literal: [] });
  });

  it('a join URI with a conflicting setting is refused naming both', () => {
    const uri = 'tbot+proxy+bound-keypair://bot-token:reg-secret@mwi.example.com:443';
    const conflicts: Array<[Record<string, unknown>, string]> = [
      [{ auth_server: 'a:1' }, 'auth_server (--auth-server or tbot.yaml)'],
      [{ proxy_server: 'mwi.example.com:443' }, 'proxy_server (--proxy-server or tbot.yaml)'],
      [{ onboarding: { join_method: 'token' } }, 'onboarding.join_method (--join-method or tbot.yaml)'],
      [{ onboarding: { token: 'bot-token' } }, 'onboarding.token (--token or tbot.yaml)'],
      [
        { onboarding: { bound_keypair: { registration_secret: 'other' } } },
        'onboarding.bound_keypair.registration_secret (--registration-secret or tbot.yaml)',
      ],
      [
        { onboarding: { bound_keypair: { registration_secret_path: '/s' } } },
        'onboarding.bound_keypair.registration_secret_path (--registration-secret-path or tbot.yaml)',
      ],
    ];
    for (const [extra, key] of conflicts) {
      assert.throws(
        () => applyJoinUri({ join_uri: uri, ...extra }),
        (e: unknown) =>
          isMwiError(e, 'BAD_CONFIG') &&
          e.message.startsWith(`join_uri: the join URI (--join-uri or tbot.yaml join_uri) conflicts with ${key}: `) &&
          !/reg-secret|bot-token/.test(e.message),
        key,
      );
    }
  });

  it('--join-uri through the flags: the environment gives no address, method or token beside it', () => {
    const flags: TbotFlags = { 'join-uri': 'tbot+proxy+token://0123456789abcdef0123456789abcdef@mwi.example.com:443' };
    const env = { TELEPORT_PROXY: 'other:1', TELEPORT_AUTH_SERVER: 'other:2', TELEPORT_BOT_TOKEN: 'env-token' };
    const cfg = validateTbotConfig(buildTbotFile({ ...flags, oneshot: true }, env), env);
    assert.deepEqual(
      [cfg.proxyServer, cfg.authServers, cfg.joinMethod, cfg.token],
      ['mwi.example.com:443', ['mwi.example.com:443'], 'token', '0123456789abcdef0123456789abcdef'],
    );
    // an auth address needs a pin, as any auth_server
    const auth = buildTbotFile({ 'join-uri': 'tbot+auth+token://0123456789abcdef@127.0.0.1:3025', oneshot: true });
    assert.throws(() => validateTbotConfig(auth, {}), /onboarding\.ca_pins: required for the first join/);
    const pinned = buildTbotFile({ 'join-uri': 'tbot+auth+token://0123456789abcdef@127.0.0.1:3025', 'ca-pin': [PIN] });
    assert.deepEqual(validateTbotConfig(pinned, {}).authServers, ['127.0.0.1:3025']);
    assert.throws(
      () => validateTbotConfig(buildTbotFile({ ...flags, token: 'x' }), {}),
      /join_uri: the join URI .* conflicts with onboarding\.token/,
    );
  });
});

describe('a join URI gives values, never file paths (L7)', () => {
  it('a token and a parameter that percent-decode to an absolute path are sent as they are, the file never read', () => {
    const dir = tempDir('uri-literal');
    try {
      const local = join(dir.path, 'local-secret');
      writeFileSync(local, 'contents of a local file\n');
      const enc = encodeURIComponent(local);
      const asFlags = buildTbotFile({
        'join-uri': `tbot+auth+bound-keypair://${enc}:${enc}@auth:3025`,
        'ca-pin': [PIN],
      });
      const cfg = validateTbotConfig(asFlags, {});
      assert.equal(cfg.token, local);
      assert.deepEqual(cfg.methodOptions, { registration_secret: local });
      assert.equal(registrationSecret(cfg.methodOptions), local);
      // a missing path is no error either: it is just the value
      const gone = encodeURIComponent(join(dir.path, 'absent'));
      const tokenUri = buildTbotFile({ 'join-uri': `tbot+auth+token://${gone}@auth:3025`, 'ca-pin': [PIN] });
      assert.equal(validateTbotConfig(tokenUri, {}).token, join(dir.path, 'absent'));
      // the same path given by --token or --registration-secret is still read as a file (tbot's rule)
      const byFlags = buildTbotFile({
        'auth-server': 'auth:3025',
        'ca-pin': [PIN],
        'join-method': 'bound_keypair',
        token: local,
        'registration-secret': local,
      });
      const fromFiles = validateTbotConfig(byFlags, {});
      assert.equal(fromFiles.token, 'contents of a local file');
      assert.equal(registrationSecret(fromFiles.methodOptions), 'contents of a local file');
    } finally {
      dir.cleanup();
    }
  });
});

describe('bound_keypair: --registration-secret-path and --static-key-path', () => {
  const bkFlags = (extra: TbotFlags): TbotFlags => ({
    'auth-server': 'a:1',
    token: 'bk-token',
    'ca-pin': [PIN],
    'join-method': 'bound_keypair',
    ...extra,
  });
  const config = (extra: TbotFlags, env: NodeJS.ProcessEnv = {}) =>
    validateTbotConfig(buildTbotFile(bkFlags(extra)), env);

  it("Teleport's precedence: the path, then the value, then $TBOT_REGISTRATION_SECRET; a configured one warns over the variable", () => {
    const dir = tempDir('bk-paths');
    try {
      const file = join(dir.path, 'secret');
      writeFileSync(file, '  from-the-path-file\n');
      const field = 'onboarding.bound_keypair.registration_secret_path';
      // the file is noted at startup and read by the join that registers (issue M2)
      const byPath = config({ 'registration-secret-path': file });
      assert.deepEqual(byPath.methodOptions, { registration_secret_file: { path: file, field } });
      assert.equal(registrationSecret(byPath.methodOptions), 'from-the-path-file');
      assert.deepEqual(byPath.warnings, []);
      const overEnv = config({ 'registration-secret-path': file }, { TBOT_REGISTRATION_SECRET: 'env-secret' });
      assert.equal(registrationSecret(overEnv.methodOptions), 'from-the-path-file');
      assert.deepEqual(overEnv.warnings, [
        'onboarding.bound_keypair.registration_secret_path and $TBOT_REGISTRATION_SECRET are both set: the ' +
          'configured one is used',
      ]);
      const valueOverEnv = config({ 'registration-secret': 'inline' }, { TBOT_REGISTRATION_SECRET: 'env-secret' });
      assert.equal(valueOverEnv.methodOptions.registration_secret, 'inline');
      assert.match(valueOverEnv.warnings.join('\n'), /registration_secret and \$TBOT_REGISTRATION_SECRET are both set/);
      assert.doesNotMatch(valueOverEnv.warnings.join('\n'), /inline|env-secret/, 'no secret in a warning');
      assert.equal(
        config({}, { TBOT_REGISTRATION_SECRET: 'env-secret' }).methodOptions.registration_secret,
        'env-secret',
      );
      assert.throws(
        () => config({ 'registration-secret-path': file, 'registration-secret': 'inline' }),
        (e: unknown) => isMwiError(e, 'BAD_CONFIG') && e.field === field && /not both, as in Teleport/.test(e.message),
      );
      // a missing or empty file: no error at startup (a bound tbot restarts without it), one at registration
      const absent = config({ 'registration-secret-path': join(dir.path, 'absent') }).methodOptions;
      assert.throws(
        () => registrationSecret(absent),
        (e: unknown) =>
          isMwiError(e, 'BAD_CONFIG') && e.field === field && /cannot read \S+absent: ENOENT/.test(e.message),
      );
      writeFileSync(join(dir.path, 'empty'), '\n');
      const empty = config({ 'registration-secret-path': join(dir.path, 'empty') }).methodOptions;
      assert.throws(() => registrationSecret(empty), /is empty/);
      // --static-key-path is onboarding.bound_keypair.static_private_key_path; it wins over the variable
      const keyFile = join(dir.path, 'key.pem');
      writeFileSync(keyFile, 'PEM TEXT\n');
      const file2 = buildTbotFile(bkFlags({ 'static-key-path': keyFile }));
      assert.deepEqual((file2.onboarding as { bound_keypair: unknown }).bound_keypair, {
        static_private_key_path: keyFile,
      });
      const st = validateTbotConfig(file2, { TBOT_BOUND_KEYPAIR_STATIC_KEY: 'ignored' });
      assert.equal(st.methodOptions.static_private_key, 'PEM TEXT');
      assert.match(st.warnings.join('\n'), /static_private_key_path and \$TBOT_BOUND_KEYPAIR_STATIC_KEY are both set/);
      // the flags belong to bound_keypair
      assert.throws(
        () =>
          validateTbotConfig(buildTbotFile({ ...bkFlags({ 'static-key-path': keyFile }), 'join-method': 'token' }), {}),
        /onboarding\.bound_keypair: only for join method bound_keypair/,
      );
    } finally {
      dir.cleanup();
    }
  });
});
