import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateTbotConfig } from '../../src/agent/config.js';
import { destinationPaths } from '../../src/agent/destinations/index.js';
import { isMwiError } from '../../src/errors.js';
import { systemdUnit, systemdWord, type UnitSpec } from '../../src/util/systemd-unit.js';

const PIN = `sha256:${'ab'.repeat(32)}`;
const base: UnitSpec = {
  description: 'test',
  user: 'tbot',
  group: 'tbot',
  execStart: ['/usr/bin/node', '/usr/lib/tbot.js', 'start', '-c', '/etc/tbot.yaml'],
  readWritePaths: ['/var/lib/tbot'],
};
const line = (unit: string, key: string) => unit.split('\n').find((l) => l.startsWith(`${key}=`));

/** The directories a tbot.yaml lets its service write, as tbot install systemd computes them. */
function writable(raw: Record<string, unknown>): string[] {
  const cfg = validateTbotConfig(
    { version: 'v2', auth_server: 'a:3025', onboarding: { join_method: 'token', ca_pins: [PIN] }, ...raw },
    {},
  );
  return [
    ...destinationPaths(cfg.storage),
    ...cfg.outputs.flatMap((o) => (o.destination ? destinationPaths(o.destination) : [])),
  ];
}

describe('systemd unit', () => {
  it('has the sections, the service settings and the hardening, without MemoryDenyWriteExecute', () => {
    const u = systemdUnit(base);
    for (const l of [
      '[Unit]',
      'After=network-online.target',
      'Wants=network-online.target',
      'Type=simple',
      'User=tbot',
      'Group=tbot',
      'Restart=always',
      'RestartSec=5',
      'ExecStart=/usr/bin/node /usr/lib/tbot.js start -c /etc/tbot.yaml',
      'ExecReload=/bin/kill -HUP $MAINPID',
      'LimitNOFILE=524288',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ReadWritePaths=/var/lib/tbot',
      'ProtectHome=yes',
      'PrivateTmp=yes',
      'PrivateDevices=yes',
      'CapabilityBoundingSet=',
      'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX',
      'SystemCallFilter=@system-service',
      'UMask=0077',
      '[Install]',
      'WantedBy=multi-user.target',
    ])
      assert.ok(u.split('\n').includes(l), l);
    assert.ok(!/^MemoryDenyWriteExecute/m.test(u));
    assert.match(u, /^# .*MemoryDenyWriteExecute.*V8/m);
  });

  it('quotes and escapes words with blanks, quotes, backslashes, % and $', () => {
    assert.equal(systemdWord('/opt/a b/c', 'x', true), '"/opt/a b/c"');
    assert.equal(systemdWord('/opt/50%', 'x', true), '/opt/50%%');
    assert.equal(systemdWord('/opt/$HOME', 'x', true), '/opt/$$HOME');
    assert.equal(systemdWord('/opt/$HOME', 'x', false), '/opt/$HOME');
    assert.equal(systemdWord('/a"b\\c', 'x', false), '"/a\\"b\\\\c"');
    assert.equal(systemdWord("/it's", 'x', false), '"/it\'s"');
    const u = systemdUnit({
      ...base,
      execStart: ['/opt/my node/node', '/srv/t bot.js', 'start', '-c', '/etc/my tbot.yaml'],
      readWritePaths: ['/var/lib/my tbot', '/out'],
    });
    assert.equal(line(u, 'ExecStart'), 'ExecStart="/opt/my node/node" "/srv/t bot.js" start -c "/etc/my tbot.yaml"');
    assert.equal(line(u, 'ReadWritePaths'), 'ReadWritePaths="/var/lib/my tbot" /out');
  });

  it('refuses what a unit cannot hold: newlines, relative paths, bad user names', () => {
    const bad = (s: Partial<UnitSpec>) =>
      assert.throws(
        () => systemdUnit({ ...base, ...s }),
        (e) => isMwiError(e),
      );
    bad({ readWritePaths: ['/a\nExecStartPre=/bin/sh'] });
    bad({ readWritePaths: ['relative'] });
    bad({ execStart: ['node', 'x'] });
    bad({ user: 'a b' });
    bad({ group: '' });
  });

  it('ReadWritePaths: the storage and every directory destination; memory storage adds nothing', () => {
    const outputs = [
      { type: 'identity', destination: { type: 'directory', path: '/opt/out-a' } },
      { type: 'identity', destination: { type: 'directory', path: '/opt/out b' } },
    ];
    const dirs = writable({ storage: { type: 'directory', path: '/var/lib/tbot' }, outputs });
    assert.deepEqual(dirs, ['/var/lib/tbot', '/opt/out-a', '/opt/out b']);
    const u = systemdUnit({ ...base, readWritePaths: dirs });
    assert.equal(line(u, 'ReadWritePaths'), 'ReadWritePaths=/var/lib/tbot /opt/out-a "/opt/out b"');
    const mem = writable({ storage: { type: 'memory' }, outputs: [outputs[0]] });
    assert.deepEqual(mem, ['/opt/out-a']);
    const none = systemdUnit({ ...base, readWritePaths: writable({ storage: { type: 'memory' } }) });
    assert.equal(line(none, 'ReadWritePaths'), undefined);
    assert.match(none, /^ProtectSystem=strict$/m);
  });
});
