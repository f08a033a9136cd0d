import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { connect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { MWI } from '../../src/cli/help/mwi-table.js';
import { TBOT } from '../../src/cli/help/tbot-table.js';
import { TCTL } from '../../src/cli/help/tctl-table.js';
import { startCluster, tbotFlags, type TestCluster } from '../helpers/cluster.js';
import { cli, exited, spawnCli, waitFor } from '../helpers/procs.js';
import { freePort } from '../helpers/sshd.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** Issue #12, items 7, 8 and 10: help, "did you mean", the messages that misled, state that was invisible. */
describe('operator experience: errors, help and what tctl shows', () => {
  let c: TestCluster;
  let token: string;
  before(async () => {
    c = await startCluster('ops.example');
    token = await c.addBot('robot', ['deploy']);
  });
  after(async () => c?.stop());

  it('7: every command of tctl, tbot and mwi has its own --help (exit 0): usage, flags, an example', async () => {
    for (const program of [TCTL, TBOT, MWI]) {
      for (const command of program.commands) {
        const r = await cli(program.name, [...command.path.split(' '), '--help']);
        const where = `${program.name} ${command.path} --help`;
        assert.equal(r.code, 0, `${where}: ${r.stderr}`);
        assert.ok(r.stdout.startsWith(`Usage: ${program.name} ${command.path}`), `${where}: ${r.stdout.slice(0, 80)}`);
      }
    }
    const add = (await cli('tctl', ['bots', 'add', '--help'])).stdout;
    for (const s of [
      '--roles R1,R2',
      "the join token's lifetime (default 1h)",
      '$TELEPORT_IDENTITY_FILE',
      'Join methods: token',
    ])
      assert.ok(add.includes(s), `tctl bots add --help: ${s}`);
    assert.match(add, /Example:\n {2}tctl bots add robot --roles/);
    assert.equal((await cli('tctl', ['help', 'bots', 'add'])).stdout, add);
    const start = (await cli('tbot', ['start', '--help'])).stdout;
    for (const s of ['--certificate-ttl D', '(default 1h)', '$TELEPORT_BOT_TOKEN', 'Join methods:', 'Examples:'])
      assert.ok(start.includes(s), `tbot start --help: ${s}`);
    const kp = (await cli('tbot', ['keypair', 'create', '--help'])).stdout;
    assert.match(kp, /--static-key-path FILE/);
    assert.doesNotMatch(kp, /--certificate-ttl/, "keypair create's own flags, not start's");
    const mwi = (await cli('mwi', ['start', '--help'])).stdout;
    assert.match(
      mwi,
      /--listen HOST:PORT +address for the join, renew and admin APIs [^-]*\(default\s+127\.0\.0\.1:3025\)/,
    );
    const status = (await cli('tctl', ['status', '--help'])).stdout;
    assert.match(status, /operator identity made on the Auth Service host by tctl auth\s+sign --admin/);
    assert.doesNotMatch(status, /admin-identity\.json|admin\/identity\.json/);
    // a group lists its commands
    assert.match((await cli('tctl', ['bots', 'instances', '--help'])).stdout, /bots instances ls \[BOT\]/);
  });

  it('7: "did you mean" for unknown commands and flags, from the command\'s own', async () => {
    const cases: Array<[Parameters<typeof cli>[0], string[], RegExp]> = [
      [
        'tctl',
        ['bots', 'add', 'x', '--role', 'dev'],
        /unknown option '--role' for tctl bots add \(did you mean --roles\?\)/,
      ],
      ['tctl', ['bts', 'ls'], /unknown command "bts" \(did you mean "bots"\?\)/],
      ['tctl', ['tokens', 'lss'], /unknown command "tokens lss" \(did you mean "tokens ls"\?\)/],
      ['tbot', ['start', '--oneshoot'], /unknown option '--oneshoot' for tbot start \(did you mean --oneshot\?\)/],
      ['tbot', ['keypair', 'creat'], /unknown command "keypair creat" \(did you mean "keypair create"\?\)/],
      ['mwi', ['start', '--listn', 'x'], /unknown option '--listn' for mwi start \(did you mean --listen\?\)/],
    ];
    for (const [program, args, message] of cases) {
      const r = await cli(program, ['--data-dir', c.dataDir, ...args].slice(program === 'tctl' ? 0 : 2));
      assert.equal(r.code, 2, `${program} ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    // bot is an alias of bots, list of ls
    assert.match(await c.tctlOk(['bot', 'list']), /^robot\s+robot-role\s/m);
  });

  it('8: each message that misled now says what is wrong', async () => {
    const empty = join(c.dir, 'empty-data-dir');
    mkdirSync(empty, { recursive: true });
    const bad = join(c.dir, 'bad.yaml');
    writeFileSync(bad, 'listen: [unclosed\n');
    const unknownKey = join(c.dir, 'unknown-key.yaml');
    writeFileSync(
      unknownKey,
      `version: v2\nauth_server: ${c.addr}\nonboarding: { join_method: token, token: x, ca_pins: ["${c.caPin}"] }\n` +
        'renewal_intreval: 5m\n',
    );
    const pin = ['--auth-server', c.addr, '--token', token, '--ca-pin', c.caPin, '--oneshot'];
    const cases: Array<{ what: string; run: () => ReturnType<typeof cli>; code: number; says: RegExp; not?: RegExp }> =
      [
        {
          what: 'tctl bots',
          run: () => c.tctl(['bots']),
          code: 2,
          says: /"tctl bots" needs a command: add, ls, rm, update, instances/,
          not: /NAME: is required/,
        },
        {
          what: 'tctl --auth-server X status without --identity',
          run: () => cli('tctl', ['--data-dir', empty, '--auth-server', c.addr, 'status']),
          code: 2,
          // points at an operator identity of one's own, not at copying the data dir's admin identity
          says: /--identity: is required with --auth-server: .*tctl auth sign --admin --user NAME --out FILE/,
          not: /no admin identity at|writes one to its data dir/,
        },
        {
          what: 'tbot start with no flags',
          run: () => cli('tbot', ['start']),
          code: 2,
          says: /tbot start needs the Auth Service and a way to join: -c tbot\.yaml, or --auth-server HOST:PORT/,
          not: /Invalid input|auth_server/,
        },
        {
          what: 'a command word with a space',
          run: () => c.tctl(['tokens ', 'ls']),
          code: 2,
          says: /unknown command "tokens " \(it has spaces around it: did you mean "tokens"\?\)/,
        },
        {
          what: 'bots add of an existing bot',
          run: () => c.tctl(['bots', 'add', 'robot', '--roles', 'robot-role']),
          code: 1,
          says: /bot "robot" already exists: tctl bots update "robot" changes its roles and logins/,
          not: /--force/,
        },
        {
          what: 'a bad --certificate-ttl',
          run: () => cli('tbot', ['start', ...pin, '--certificate-ttl', '25h']),
          code: 2,
          says: /--certificate-ttl: at most 24h \(got 25h\) \(tbot\.yaml credential_ttl\)/,
        },
        {
          what: 'a --certificate-ttl that is no duration',
          run: () => cli('tbot', ['start', ...pin, '--certificate-ttl', '5x']),
          code: 2,
          says: /^ERROR: --certificate-ttl: expected a duration/m,
        },
        {
          what: 'a config file that cannot be read',
          run: () => cli('tbot', ['start', '-c', join(c.dir, 'none.yaml')]),
          code: 2,
          says: /cannot read config file \S+none\.yaml: no such file or directory \(ENOENT\)/,
        },
        {
          what: 'mwi.yaml that cannot be read',
          run: () => cli('mwi', ['start', '-c', join(c.dir, 'none.yaml'), '--data-dir', join(c.dir, 'd1')]),
          code: 2,
          says: /--config: cannot read \S+none\.yaml: no such file or directory \(ENOENT\)/,
        },
        {
          what: 'a YAML error in mwi.yaml',
          run: () => cli('mwi', ['start', '-c', bad, '--data-dir', join(c.dir, 'd2')]),
          code: 2,
          says: /bad\.yaml is not valid YAML: /,
          not: /cannot read/,
        },
        {
          what: 'the unknown-key error points to a page that exists',
          run: () => cli('tbot', ['start', '-c', unknownKey]),
          code: 2,
          says: /renewal_intreval: unknown key .*docs\/reference\.md, "tbot\.yaml \(v2\)"/,
          not: /docs\/reference\/tbot-yaml\.md/,
        },
        {
          what: 'tokens add --ttl 0s',
          run: () => c.tctl(['tokens', 'add', '--type=bot', '--bot-name', 'robot', '--ttl', '0s']),
          code: 2,
          says: /--ttl: must be more than 0 \(got "0s"\)/,
        },
        {
          what: 'lock --ttl 0s',
          run: () => c.tctl(['lock', '--user', 'bot-robot', '--ttl', '0s']),
          code: 2,
          says: /--ttl: must be more than 0 \(got "0s"\)/,
        },
        {
          what: 'tokens rm of no token',
          run: () => c.tctl(['tokens', 'rm', 'h-0000000000000000']),
          code: 1,
          says: /no such token: no token has this id, nor \(method token\) this secret; tctl tokens ls lists the ids/,
          not: /hidden/,
        },
      ];
    for (const t of cases) {
      const r = await t.run();
      assert.equal(r.code, t.code, `${t.what}: ${r.stderr}`);
      assert.match(r.stderr, t.says, t.what);
      if (t.not) assert.doesNotMatch(r.stderr, t.not, t.what);
    }
    // the page the unknown-key error names, and its section
    assert.match(readFileSync(join(ROOT, 'docs', 'reference.md'), 'utf8'), /^### tbot\.yaml \(v2\)$/m);
    // tctl bots list: the listing (it asked for a NAME before)
    assert.match(await c.tctlOk(['bots', 'list']), /^robot\s/m);
  });

  it('10: bots ls and bots instances ls show locks; instances ls of no bot fails; locks add checks its target', async () => {
    const tok = JSON.parse(
      await c.tctlOk(['tokens', 'add', '--type=bot', '--bot-name', 'robot', '--format', 'json']),
    ) as { token: string; id: string };
    const joined = await cli('tbot', [
      'start',
      ...tbotFlags(c, tok.token, join(c.dir, 'lk-s'), join(c.dir, 'lk-o')),
      '--oneshot',
    ]);
    assert.equal(joined.code, 0, joined.stderr);
    const [inst] = JSON.parse(await c.tctlOk(['bots', 'instances', 'ls', 'robot', '--format', 'json'])) as Array<{
      spec: { instance_id: string };
    }>;
    const id = inst!.spec.instance_id;
    assert.match(await c.tctlOk(['bots', 'ls']), /^Bot\s+Roles\s+Logins\s+Locked\n[\s\S]*^robot\s+robot-role\s+-$/m);
    await c.tctlOk(['locks', 'add', '--bot-instance', id, '--message', 'disk image leaked']);
    await new Promise((r) => setTimeout(r, 200)); // the lock reaches the cache
    const instances = await c.tctlOk(['bots', 'instances', 'ls', 'robot']);
    assert.match(instances, /Locked$/m);
    assert.match(instances, new RegExp(`^robot\\s+${id}\\s.*yes: disk image leaked$`, 'm'));
    assert.match(await c.tctlOk(['bots', 'ls']), /^robot\s+robot-role\s+-$/m, 'an instance lock is not the bot');
    await c.tctlOk(['lock', '--user', 'bot-robot', '--message', 'whole bot']);
    await new Promise((r) => setTimeout(r, 200));
    assert.match(await c.tctlOk(['bots', 'ls']), /^robot\s+robot-role\s+yes: whole bot$/m);

    // --user robot (a bot, not bot-robot) would lock nothing of it: refused; a name of no bot warns
    const asBot = await c.tctl(['lock', '--user', 'robot']);
    assert.equal(asBot.code, 2);
    assert.match(asBot.stderr, /^ERROR: --user: "robot" is a bot: lock it as --user bot-robot /);
    const typo = await c.tctl(['lock', '--user', 'robott', '--ttl', '1m']);
    assert.equal(typo.code, 0, typo.stderr);
    assert.match(typo.stderr, /warning: --user: mwi keeps no list of operator names, so "robott" is not checked/);

    const none = await c.tctl(['bots', 'instances', 'ls', 'nosuch']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no bot "nosuch": tctl bots ls lists the bots/);
    const ahead = await c.tctl(['locks', 'add', '--bot', 'nosuch']);
    assert.equal(ahead.code, 0, 'a bot may be locked before it exists');
    assert.match(ahead.stderr, /warning: no bot "nosuch" exists now: the lock holds a bot created later/);
    const notUuid = await c.tctl(['locks', 'add', '--bot-instance', 'not-a-uuid']);
    assert.equal(notUuid.code, 2);
    assert.match(notUuid.stderr, /--bot-instance: "not-a-uuid" is not a bot instance id \(a UUID/);
    const gone = await c.tctl(['locks', 'add', '--bot-instance', '00000000-0000-4000-8000-000000000000']);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /no bot instance "00000000-0000-4000-8000-000000000000"/);
    // Teleport's form takes any string as before, with a warning
    const teleport = await c.tctl(['lock', '--bot-instance-id', 'inst-1']);
    assert.equal(teleport.code, 0, teleport.stderr);
    assert.match(teleport.stderr, /warning: --bot-instance-id: "inst-1" is not a bot instance id/);

    // the audit table names the join token
    const audit = await c.tctlOk(['audit', 'ls', '--type', 'bot.join']);
    assert.match(audit, /^Time\s+Event\s+OK\s+Bot\s+Instance\s+Token\s+Detail$/m);
    assert.match(audit, new RegExp(`bot\\.join\\s+yes\\s+robot\\s+${id}\\s+${tok.id}\\b`));
  });

  it("10: tbot's /metrics counters are there from the start, at 0", async () => {
    const tok = JSON.parse(await c.tctlOk(['bots', 'add', 'counted', '--roles', 'robot-role', '--format', 'json'])) as {
      token: string;
    };
    const port = await freePort();
    const tbot = spawnCli('tbot', [
      'start',
      ...tbotFlags(c, tok.token, join(c.dir, 'm-s'), join(c.dir, 'm-o')),
      '--diag-addr',
      `127.0.0.1:${port}`,
    ]);
    try {
      await waitFor('the first outputs', () => existsSync(join(c.dir, 'm-o', 'tlscert')), 15_000);
      const metrics = await waitFor('/metrics', async () => {
        const r = await fetch(`http://127.0.0.1:${port}/metrics`).catch(() => undefined);
        return r?.ok ? r.text() : undefined;
      });
      // no renewal has happened yet (every 20m), nor any failure: each is there, at 0
      for (const counter of ['tbot_renewals_total', 'tbot_renewal_failures_total', 'tbot_output_failures_total'])
        assert.match(metrics, new RegExp(`^# TYPE ${counter} counter\\n${counter} 0$`, 'm'), counter);
      assert.match(metrics, /^tbot_output_writes_total \d+$/m);
    } finally {
      tbot.kill('SIGTERM');
      await exited(tbot);
    }
  });

  it("10: the Auth Service's certificate names each SAN once", async () => {
    const [host, port] = c.addr.split(':') as [string, string];
    const san = await new Promise<string>((resolvePromise, reject) => {
      const s = connect({ host, port: Number(port), servername: 'auth.mwi.cluster.local', rejectUnauthorized: false });
      s.once('secureConnect', () => {
        resolvePromise(s.getPeerX509Certificate()?.subjectAltName ?? '');
        s.destroy();
      });
      s.once('error', reject);
    });
    const names = san.split(', ');
    assert.ok(names.includes('IP Address:127.0.0.1') && names.includes('DNS:localhost'), san);
    assert.deepEqual(names, [...new Set(names)], `each once: ${san}`);
  });
});
