import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildTbotFile, validateTbotConfig } from '../../src/agent/config.js';
import { destinationFromUri } from '../../src/agent/destination-uri.js';
import { checkModeFlags, envBool, startMode } from '../../src/cli/tbot-modes.js';
import { editorOf } from '../../src/cli/tctl/edit.js';
import { lockExpiry, lockTargetOf } from '../../src/cli/tctl/locks.js';
import { parseNamedRef, parseRefs } from '../../src/cli/tctl/refs.js';
import { legacyForceFile } from '../../src/cli/tctl/resources.js';
import { parseLabels } from '../../src/cli/tctl/tokens.js';
import { isMwiError } from '../../src/errors.js';
import { createLogger } from '../../src/util/log.js';
import { tempDir } from '../helpers/procs.js';

/** Refused as a user error (exit 2) whose message matches. */
const usage = (fn: () => unknown, message: RegExp) =>
  assert.throws(fn, (e: unknown) => isMwiError(e, 'BAD_CONFIG') && message.test(e.message));

describe("tctl references (Teleport's get/rm/edit arguments)", () => {
  it('parseRefs: all, plural kinds, comma lists with \\, inside names, bot_instance/BOT/ID', () => {
    assert.equal(parseRefs('all'), 'all');
    assert.deepEqual(parseRefs('tokens'), [{ kind: 'token' }]);
    assert.deepEqual(parseRefs('token/a,bot/b,bot_instances'), [
      { kind: 'token', name: 'a' },
      { kind: 'bot', name: 'b' },
      { kind: 'bot_instance' },
    ]);
    assert.deepEqual(parseRefs('role/a\\,b'), [{ kind: 'role', name: 'a,b' }]);
    assert.deepEqual(parseRefs('bot_instance/ci/1234'), [{ kind: 'bot_instance', name: 'ci/1234' }]);
    assert.deepEqual(parseRefs('roles/'), [{ kind: 'role' }]);
    usage(() => parseRefs('roles,,bots'), /^RESOURCES: expected KIND\[\/NAME\] references/);
    usage(() => parseRefs('all,roles'), /^RESOURCES: unknown resource kind "all"/);
    usage(() => parseRefs('users'), /^RESOURCES: unknown resource kind "users" \(expected one of: role, bot/);
  });

  it('parseNamedRef: one resource, named', () => {
    assert.deepEqual(parseNamedRef('roles/dev'), { kind: 'role', name: 'dev' });
    usage(() => parseNamedRef('roles'), /^KIND\/NAME: names one resource/);
    usage(() => parseNamedRef(undefined), /^KIND\/NAME: is required/);
  });

  it('legacyForceFile: only "-f FILE" with FILE the one argument and an existing file', () => {
    const d = tempDir('legacy-f');
    try {
      const f = join(d.path, 'r.yaml');
      writeFileSync(f, 'x');
      assert.equal(legacyForceFile(['create', '-f', f], [f]), f);
      assert.equal(legacyForceFile(['create', '--force', f], [f]), undefined);
      assert.equal(legacyForceFile(['create', f, '-f'], [f]), undefined);
      // -f FILE --force (what the docs say for re-applying) means force, and says so
      assert.equal(legacyForceFile(['create', '-f', f, '--force'], [f]), undefined);
      assert.equal(legacyForceFile(['create', '-f', '-'], ['-']), undefined);
      const missing = join(d.path, 'missing.yaml');
      assert.equal(legacyForceFile(['create', '-f', missing], [missing]), undefined);
    } finally {
      d.cleanup();
    }
  });

  it('editorOf: $EDITOR, then $VISUAL, then vi', () => {
    assert.equal(editorOf({ EDITOR: 'nano', VISUAL: 'code -w' }), 'nano');
    assert.equal(editorOf({ EDITOR: '', VISUAL: 'code -w' }), 'code -w');
    assert.equal(editorOf({}), 'vi');
  });

  it('parseLabels: k=v pairs; a "__proto__" key stays a key', () => {
    assert.deepEqual(parseLabels('env=prod, team = ci ,empty='), { env: 'prod', team: 'ci', empty: '' });
    const odd = parseLabels('__proto__=x');
    assert.equal(Object.getPrototypeOf(odd), Object.prototype);
    assert.deepEqual(Object.keys(odd), ['__proto__']);
    usage(() => parseLabels('a=1,b'), /^--labels: expected KEY=VALUE pairs separated by commas \(got "b"\)/);
    usage(() => parseLabels('=x'), /^--labels: /);
  });
});

describe('tctl lock (one target, as mwi differs from Teleport)', () => {
  it('lockTargetOf: one of --user bot-NAME, --bot-instance-id, --join-token; the rest say why', () => {
    assert.deepEqual(lockTargetOf({ user: 'bot-ci' }), { user: 'bot-ci' });
    assert.deepEqual(lockTargetOf({ 'bot-instance-id': 'i' }), { bot_instance_id: 'i' });
    assert.deepEqual(lockTargetOf({ 'join-token': 't' }), { join_token: 't' });
    usage(() => lockTargetOf({ user: 'bot-ci', 'join-token': 't' }), /an mwi lock has one target/);
    // an operator identity (tctl auth sign --admin) is locked by its name
    assert.deepEqual(lockTargetOf({ user: 'alice' }), { user: 'alice' });
    usage(() => lockTargetOf({ user: 'al ice' }), /^--user: mwi's users are bots and operators/);
    usage(() => lockTargetOf({ user: 'bot-' }), /^--user: mwi's users are bots and operators/);
    usage(() => lockTargetOf({ user: 'admin' }), /^--user: the local admin identity cannot be locked/);
    usage(() => lockTargetOf({}), /give the lock's target/);
    for (const t of [
      'role',
      'login',
      'mfa-device',
      'windows-desktop',
      'access-request',
      'device',
      'server-id',
    ] as const)
      usage(() => lockTargetOf({ user: 'bot-ci', [t]: 'x' }), new RegExp(`^--${t}: mwi locks bots`));
  });

  it('lockExpiry: --expires (RFC 3339) or --ttl, never both; none is never', () => {
    const now = Date.parse('2030-01-01T00:00:00Z');
    assert.equal(lockExpiry({}, now), undefined);
    assert.equal(lockExpiry({ ttl: '90m' }, now), '2030-01-01T01:30:00.000Z');
    assert.equal(lockExpiry({ expires: '2031-02-03T04:05:06+01:00' }, now), '2031-02-03T03:05:06.000Z');
    usage(() => lockExpiry({ expires: '2031-01-01T00:00:00Z', ttl: '1h' }), /give --expires or --ttl, not both/);
    usage(() => lockExpiry({ expires: '2031-01-01' }), /^--expires: expected an RFC 3339 time/);
    usage(() => lockExpiry({ expires: '2031-13-45T99:00:00Z' }), /^--expires: /);
    usage(() => lockExpiry({ ttl: 'forever' }), /^--ttl: expected a duration/);
    usage(() => lockExpiry({ ttl: '0s' }), /^--ttl: /);
  });
});

describe("tbot flags (Teleport's modes, URIs and environment)", () => {
  it('destinationFromUri: file:///path or a bare path is a directory, memory:// is memory, kubernetes-secret:// a Secret; the rest is refused', () => {
    assert.deepEqual(destinationFromUri('file:///var/lib/tbot', '--storage'), {
      type: 'directory',
      path: '/var/lib/tbot',
    });
    assert.deepEqual(destinationFromUri('file:///a%20b', '--storage'), { type: 'directory', path: '/a b' });
    assert.deepEqual(destinationFromUri('./rel/dir', '--storage'), { type: 'directory', path: './rel/dir' });
    assert.deepEqual(destinationFromUri('/abs:colon', '--storage'), { type: 'directory', path: '/abs:colon' });
    assert.deepEqual(destinationFromUri('memory://', '--storage'), { type: 'memory' });
    assert.deepEqual(destinationFromUri('MEMORY://', '--storage'), { type: 'memory' });
    usage(() => destinationFromUri('memory://x', '--storage'), /^--storage: memory:\/\/ takes no host or path/);
    usage(() => destinationFromUri('file://host/x', '--destination'), /^--destination: a file URI names a path on/);
    usage(() => destinationFromUri('file:///bad%zz', '--storage'), /starts no %XX escape/);
    assert.deepEqual(destinationFromUri('kubernetes-secret:///s', '--destination'), {
      type: 'kubernetes_secret',
      name: 's',
    });
    usage(
      () => destinationFromUri('kubernetes-secret://ns', '--destination'),
      /expected kubernetes-secret:\/\/NAMESPACE/,
    );
    usage(() => destinationFromUri('s3://b/k', '--storage'), /unknown scheme "s3:\/\/"/);
    usage(() => destinationFromUri('', '--storage'), /^--storage: expected file:\/\/\/PATH/);
  });

  it('startMode: none or legacy; identity, id, ssh; Teleport-only modes and unknown ones say why', () => {
    assert.equal(startMode('start', []), 'legacy');
    assert.equal(startMode('start', ['legacy']), 'legacy');
    for (const m of ['identity', 'id', 'ssh']) assert.equal(startMode('configure', [m]), 'identity');
    usage(() => startMode('start', ['kubernetes/v2']), /mwi has no kubernetes\/v2 mode \(Teleport's tbot start/);
    usage(() => startMode('start', ['frobnicate']), /unknown mode "frobnicate"/);
    usage(() => startMode('start', ['identity', 'extra']), /unexpected argument "extra"/);
  });

  it('checkModeFlags: identity needs --destination and not --destination-dir; the legacy form the reverse', () => {
    checkModeFlags('start', 'identity', { destination: '/x' });
    checkModeFlags('start', 'legacy', { 'destination-dir': '/x' });
    usage(() => checkModeFlags('start', 'identity', {}), /^--destination: is required for tbot start identity/);
    usage(
      () => checkModeFlags('start', 'identity', { destination: '/x', 'destination-dir': '/y' }),
      /^--destination-dir: belongs to the legacy form/,
    );
    usage(() => checkModeFlags('configure', 'legacy', { destination: '/x' }), /^--destination: /);
  });

  it('envBool reads Teleport boolean variables as Go does', () => {
    for (const v of ['1', 't', 'TRUE', 'true', 'True']) assert.equal(envBool(v, 'TBOT_DEBUG'), true);
    for (const v of [undefined, '', '0', 'f', 'false', 'FALSE']) assert.equal(envBool(v, 'TBOT_DEBUG'), false);
    usage(() => envBool('yes', 'TBOT_DEBUG'), /^TBOT_DEBUG: expected true or false/);
  });

  it('buildTbotFile: --storage/--data-dir URIs, --destination, debug; $TELEPORT_AUTH_SERVER only as the fallback', () => {
    const pin = `sha256:${'b'.repeat(64)}`;
    const base = { token: 't', 'ca-pin': [pin] };
    const file = buildTbotFile(
      { ...base, storage: 'file:///s', destination: 'memory://', debug: true },
      { TELEPORT_AUTH_SERVER: 'env:1' },
    );
    assert.deepEqual(file.storage, { type: 'directory', path: '/s' });
    assert.deepEqual(file.outputs, [{ type: 'identity', destination: { type: 'memory' } }]);
    assert.equal(file.auth_server, 'env:1');
    const cfg = validateTbotConfig(file, {});
    assert.equal(cfg.debug, true);
    assert.deepEqual(cfg.authServers, ['env:1']);
    assert.equal(validateTbotConfig(buildTbotFile({ ...base, 'auth-server': 'a:1' }, {}), {}).debug, false);
    assert.deepEqual(buildTbotFile({ ...base, 'data-dir': 'memory://' }, {}).storage, { type: 'memory' });
    assert.equal(
      buildTbotFile({ ...base, 'auth-server': 'flag:1' }, { TELEPORT_AUTH_SERVER: 'env:1' }).auth_server,
      'flag:1',
    );
    usage(() => buildTbotFile({ ...base, storage: '/a', 'data-dir': '/b' }, {}), /^--storage: give --storage or/);
    const d = tempDir('tbot-env');
    try {
      const yaml = join(d.path, 'tbot.yaml');
      writeFileSync(yaml, 'version: v2\nauth_server: file:1\n');
      assert.equal(buildTbotFile({ config: yaml }, { TELEPORT_AUTH_SERVER: 'env:1' }).auth_server, 'file:1');
      // a proxy_server in the file is an address too: the environment adds no auth_server beside it
      writeFileSync(yaml, 'version: v2\nproxy_server: proxy:443\n');
      assert.equal(buildTbotFile({ config: yaml }, { TELEPORT_AUTH_SERVER: 'env:1' }).auth_server, undefined);
      writeFileSync(yaml, 'version: v2\ndebug: yes\n');
      assert.throws(
        () =>
          validateTbotConfig(
            buildTbotFile({ ...base, config: yaml, 'auth-server': 'a:1', 'join-method': 'token' }, {}),
            {},
          ),
        /debug: Expected boolean/,
      );
    } finally {
      d.cleanup();
    }
  });

  it("createLogger json: one JSON object per line, Teleport's keys, unsafe characters escaped", () => {
    const lines: string[] = [];
    // eslint-disable-next-line @typescript-eslint/unbound-method -- saved only to be put back on process.stderr
    const write = process.stderr.write;
    process.stderr.write = (chunk: string) => (lines.push(String(chunk)), true);
    try {
      const log = createLogger('tbot', 'info', 'json');
      log.debug('hidden');
      log.warn('a\u009bb\nc', { n: 1, s: 'x\u202ey', message: 'a field cannot replace the message' });
    } finally {
      process.stderr.write = write;
    }
    assert.equal(lines.length, 1);
    const line = lines[0]!;
    assert.ok(line.endsWith('}\n') && line.indexOf('\n') === line.length - 1, line);
    assert.doesNotMatch(line, /[\u009b\u202e]/);
    const entry = JSON.parse(line);
    assert.equal(entry.level, 'warn');
    assert.equal(entry.component, 'tbot');
    assert.equal(entry.message, 'a\u009bb\nc');
    assert.equal(entry.s, 'x\u202ey');
    assert.equal(entry.n, 1);
    assert.ok(!Number.isNaN(Date.parse(entry.timestamp)));
  });
});
