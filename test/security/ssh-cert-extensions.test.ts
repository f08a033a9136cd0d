import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { roleSchema, validateResource, type Role } from '../../src/api/resources.js';
import { sshExtensions } from '../../src/auth/ssh-permissions.js';
import { isMwiError } from '../../src/errors.js';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { cli, run } from '../helpers/procs.js';
import { freePort, startSshd, type Sshd } from '../helpers/sshd.js';

/** `ssh-keygen -L` of a certificate file: its key ID, serial, principals and extensions. */
export async function readSshCert(
  file: string,
): Promise<{ keyId: string; serial: string; principals: string[]; extensions: string[]; text: string }> {
  const r = await run('ssh-keygen', ['-L', '-f', file]);
  assert.equal(r.code, 0, r.stderr);
  const list = (name: string): string[] =>
    new RegExp(`${name}: ?\\n((?:\\s{16}.*\\n)*)`).exec(r.stdout)?.[1]?.trim().split(/\s+/).filter(Boolean) ?? [];
  return {
    keyId: /Key ID: "(.*)"/.exec(r.stdout)![1]!,
    serial: /Serial: (\d+)/.exec(r.stdout)![1]!,
    principals: list('Principals'),
    extensions: list('Extensions'),
    text: r.stdout,
  };
}

/**
 * SSH certificate extensions follow the roles' options (Teleport's names and defaults) instead of
 * all being on; the key ID names the bot and the instance (finding 14).
 */
describe('SSH certificate extensions follow role options; the key ID names bot and instance', () => {
  let cluster: TestCluster;
  let sshd: Sshd;
  const me = userInfo().username;
  const out: Record<string, string> = {};
  const bots: Record<string, string> = {
    // no options: Teleport's defaults
    plain: '{}',
    everything: '{ forward_agent: true, permit_x11_forwarding: true }',
    'no-forwarding': '{ port_forwarding: false }',
    'no-local': '{ ssh_port_forwarding: { local: { enabled: false } } }',
  };

  before(async () => {
    cluster = await startCluster();
    sshd = await startSshd(cluster, join(cluster.dir, 'sshd'));
    for (const [bot, options] of Object.entries(bots)) {
      const file = join(cluster.dir, `${bot}.yaml`);
      writeFileSync(
        file,
        `kind: role\nversion: v7\nmetadata: { name: ${bot}-role }\nspec:\n  options: ${options}\n` +
          `  allow: { logins: [${me}] }\n`,
      );
      await cluster.tctlOk(['create', '-f', file]);
      const { token } = JSON.parse(
        await cluster.tctlOk(['bots', 'add', bot, '--roles', `${bot}-role`, '--format', 'json']),
      ) as { token: string };
      out[bot] = join(cluster.dir, `out-${bot}`);
      const r = await cli(
        'tbot',
        ['start', '--oneshot', ...tbotFlags(cluster, token, join(cluster.dir, `bot-${bot}`), out[bot])],
        { timeoutMs: 30_000 },
      );
      assert.equal(r.code, 0, `tbot ${bot}: ${r.stderr}`);
    }
  });

  after(async () => {
    await sshd?.stop();
    await cluster?.stop();
  });

  it('defaults: permit-pty and permit-port-forwarding only (no agent, X11 or user-rc)', async () => {
    assert.deepEqual((await readSshCert(join(out.plain!, 'key-cert.pub'))).extensions, [
      'permit-port-forwarding',
      'permit-pty',
    ]);
  });

  it('forward_agent and permit_x11_forwarding grant their extensions', async () => {
    assert.deepEqual((await readSshCert(join(out.everything!, 'key-cert.pub'))).extensions, [
      'permit-X11-forwarding',
      'permit-agent-forwarding',
      'permit-port-forwarding',
      'permit-pty',
    ]);
  });

  it('port_forwarding: false and ssh_port_forwarding.local.enabled: false remove permit-port-forwarding', async () => {
    assert.deepEqual((await readSshCert(join(out['no-forwarding']!, 'key-cert.pub'))).extensions, ['permit-pty']);
    assert.deepEqual((await readSshCert(join(out['no-local']!, 'key-cert.pub'))).extensions, ['permit-pty']);
  });

  it('a real sshd refuses (remote) port forwarding to a bot whose role denies it, and allows it by default', async () => {
    const forward = async (bot: string) => {
      const port = await freePort();
      return run(
        'ssh',
        [
          '-F',
          join(out[bot]!, 'ssh_config'),
          '-p',
          String(sshd.port),
          '-o',
          'BatchMode=yes',
          '-o',
          'ExitOnForwardFailure=yes',
          '-R',
          `127.0.0.1:${port}:127.0.0.1:${sshd.port}`,
          `${me}@127.0.0.1`,
          'true',
        ],
        { timeoutMs: 30_000 },
      );
    };
    const allowed = await forward('plain');
    assert.equal(allowed.code, 0, allowed.stderr);
    const denied = await forward('no-forwarding');
    assert.notEqual(denied.code, 0, 'port forwarding was allowed');
    assert.match(denied.stderr, /forwarding/i);
  });

  it('finding 14: the key ID names the bot and its instance; sshd logs it with the serial', async () => {
    const joins = cluster.audit().filter((e) => e.event === 'bot.join' && e.success);
    for (const bot of Object.keys(bots)) {
      const cert = await readSshCert(join(out[bot]!, 'key-cert.pub'));
      const instance = joins.find((e) => e.bot_name === bot)?.bot_instance_id as string;
      assert.match(instance, /^[0-9a-f-]{36}$/);
      assert.equal(cert.keyId, `bot-${bot}/${instance}`);
    }
    const plain = await readSshCert(join(out.plain!, 'key-cert.pub'));
    assert.ok(sshd.log().includes(`ID ${plain.keyId} (serial ${plain.serial})`), sshd.log().slice(-2000));
  });
});

describe("sshExtensions: Teleport's rules for combining role options", () => {
  const role = (options: Record<string, unknown>): Role =>
    roleSchema.parse({ kind: 'role', metadata: { name: 'r' }, spec: { options } });
  const pf = (...opts: Array<Record<string, unknown>>): boolean =>
    sshExtensions(opts.map(role)).includes('permit-port-forwarding');

  it('agent and X11 forwarding: any role enabling them grants them; permit-pty always; permit-user-rc never', () => {
    assert.deepEqual(sshExtensions([]), ['permit-port-forwarding', 'permit-pty']);
    assert.deepEqual(sshExtensions([role({ forward_agent: false }), role({ forward_agent: true })]), [
      'permit-agent-forwarding',
      'permit-port-forwarding',
      'permit-pty',
    ]);
    assert.deepEqual(sshExtensions([role({ permit_x11_forwarding: true }), role({})]), [
      'permit-X11-forwarding',
      'permit-port-forwarding',
      'permit-pty',
    ]);
  });

  it('port forwarding: an explicit ssh_port_forwarding deny wins over allows; the legacy flag counts only without it', () => {
    assert.equal(pf({}), true);
    assert.equal(
      pf(
        { ssh_port_forwarding: { remote: { enabled: false } } },
        { ssh_port_forwarding: { remote: { enabled: true } } },
      ),
      false,
    );
    assert.equal(pf({ ssh_port_forwarding: { local: { enabled: true }, remote: { enabled: true } } }), true);
    assert.equal(pf({ port_forwarding: false }, {}), false);
    // a legacy allow on one role turns it on, as Teleport does
    assert.equal(pf({ port_forwarding: false }, { port_forwarding: true }), true);
    assert.equal(pf({ ssh_port_forwarding: { local: { enabled: false } } }, { port_forwarding: true }), true);
    // a legacy deny is ignored once some role uses ssh_port_forwarding
    assert.equal(pf({ port_forwarding: false }, { ssh_port_forwarding: { local: { enabled: true } } }), true);
  });

  it('option values of the wrong type are refused when the role is created, naming the field', () => {
    for (const [options, field] of [
      [{ forward_agent: 'yes' }, 'spec.options.forward_agent'],
      [{ permit_x11_forwarding: 1 }, 'spec.options.permit_x11_forwarding'],
      [{ ssh_port_forwarding: { local: { enabled: 'no' } } }, 'spec.options.ssh_port_forwarding.local.enabled'],
      [{ ssh_port_forwarding: { sideways: {} } }, 'spec.options.ssh_port_forwarding.sideways'],
    ] as const) {
      assert.throws(
        () => validateResource({ kind: 'role', metadata: { name: 'r' }, spec: { options } }),
        (e) => isMwiError(e, 'BAD_REQUEST') && e.field === field,
        JSON.stringify(options),
      );
    }
  });
});
